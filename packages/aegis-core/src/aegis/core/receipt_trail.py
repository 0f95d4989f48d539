"""The Gate's side of the receipt trail: build a receipt from what is known of a call, seal it
into the hash chain and hand it to the sink; reopen the chain after the sink failed.

A receipt has two halves. The :class:`CallSubject` is fixed when the call is first seen (who,
which model, when); the :class:`Outcome` is what the decision was and what it cost. Keeping
them apart is what lets every decision site (a refusal, a settlement, an alert, a recovery
record) say only what it knows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from aegis.core.clock import Clock
from aegis.core.errors import ReceiptError, ReceiptSinkUnavailable
from aegis.core.money import format_usd
from aegis.core.policy import Policy
from aegis.core.pricing import PricingTable, Usage
from aegis.core.receipts import (
    Bound,
    Decision,
    Receipt,
    ReceiptChain,
    ReceiptSink,
    ReceiptStatus,
    Signer,
    new_receipt_id,
)

__all__ = ["CallSubject", "Outcome", "ReceiptTrail", "UsageSource", "iso_utc"]

logger = logging.getLogger(__name__)

UsageSource = Literal["reported", "counted", "reservation", "none"]


def iso_utc(ts: float) -> str:
    """A POSIX timestamp as UTC ISO 8601 with microseconds and a ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class CallSubject:
    """The part of a receipt fixed when the call arrives."""

    receipt_id: str
    request_id: str
    tenant_id: str
    run_id: str | None
    provider: str
    model: str
    capability: str
    started_at: float
    started_mono: float
    body_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What was decided about a call and what it cost (amounts in nano-USD)."""

    decision: Decision
    status: ReceiptStatus
    usage: Usage | None = None
    usage_source: UsageSource = "none"
    estimated: int = 0
    reserved: int = 0
    actual: int = 0
    upstream_status: int | None = None
    error: str | None = None
    late: bool = False
    bound: Bound | None = None
    """The input bound and output limit the reservation was computed from."""


class ReceiptTrail:
    """Seals receipts into one chain and writes them, in order, to one sink."""

    def __init__(
        self,
        signer: Signer,
        sink: ReceiptSink,
        clock: Clock,
        pricing: Callable[[], PricingTable],
        chain_id: str | None = None,
    ) -> None:
        self.sink = sink
        self.pricing = pricing
        """The price table in force, stamped on records that belong to no call."""
        self.clock = clock
        self.on_receipt: Callable[[Receipt], None] | None = None
        """Called with every call receipt once the sink has it; must not raise or block."""
        self._chain = ReceiptChain(signer) if chain_id is None else ReceiptChain(signer, chain_id)
        self._ready = False
        self._broken = False
        self._lock = asyncio.Lock()
        self._recorded: set[str] = set()
        """Price tables (by version) already written into this trail by this process."""
        self._tables: dict[str, PricingTable] = {}
        """Tables named by a receipt and not yet recorded."""

    def check(self) -> None:
        """Raise :class:`ReceiptSinkUnavailable` when a receipt could not be written now."""
        self.sink.check()

    def receipt(
        self, subject: CallSubject, outcome: Outcome, policy: Policy | None, pricing: PricingTable
    ) -> Receipt:
        """The unsealed receipt of ``subject``'s ``outcome``, finished now."""
        decision = outcome.decision
        if pricing.version not in self._recorded:
            self._tables[pricing.version] = pricing
        return Receipt(
            receipt_id=subject.receipt_id,
            request_id=subject.request_id,
            tenant_id=subject.tenant_id,
            run_id=subject.run_id,
            provider=subject.provider,
            model=subject.model,
            capability=subject.capability,
            decision=decision,
            status=outcome.status,
            usage=outcome.usage,
            usage_source=outcome.usage_source,
            estimated_usd=format_usd(outcome.estimated),
            reserved_usd=format_usd(outcome.reserved),
            actual_usd=format_usd(outcome.actual),
            overage=outcome.actual > outcome.reserved and decision.allowed,
            late=outcome.late,
            pricing_version=pricing.version,
            pricing_as_of=pricing.as_of.isoformat(),
            policy_version=None if policy is None else policy.version,
            started_at=iso_utc(subject.started_at),
            finished_at=iso_utc(self.clock.time()),
            latency_us=max(0, round((self.clock.monotonic() - subject.started_mono) * 1_000_000)),
            upstream_status=outcome.upstream_status,
            error=outcome.error,
            body_sha256=subject.body_sha256,
            bound=outcome.bound,
        )

    def subject(
        self, *, request_id: str, tenant_id: str, capability: str, provider: str = "-"
    ) -> CallSubject:
        """A subject for a record that is not a call (an alert, a recovery, an admin change)."""
        return CallSubject(
            receipt_id=new_receipt_id(),
            request_id=request_id,
            tenant_id=tenant_id,
            run_id=None,
            provider=provider,
            model="-",
            capability=capability,
            started_at=self.clock.time(),
            started_mono=self.clock.monotonic(),
        )

    async def write(self, receipt: Receipt, *, notify: bool = True) -> Receipt:
        """Seal ``receipt`` into the chain and write it; returns the sealed receipt.

        ``notify=False`` keeps it from ``on_receipt`` (records that are not calls).
        """
        if not self._ready:
            await self._resume()
        version = receipt.pricing_version
        if version is not None and version not in self._recorded:
            table = self._tables.pop(version, None)
            if table is not None and table.version == version:
                # The first receipt under a table carries it, so the trail holds every table
                # in force, signed and chained, before or with the first receipt naming it
                # (and no record of its own changes the trail's receipt count).
                self._recorded.add(version)
                receipt = replace(receipt, record=table.to_dict())
        sealed = self._chain.seal(receipt)
        try:
            await self.sink.write(sealed)
        except ReceiptSinkUnavailable:
            # Continue later from what the sink holds, saying what it lost (see _resume).
            self._ready = False
            self._broken = True
            raise
        except ReceiptError:
            raise
        except Exception as exc:
            logger.error("receipt sink failed: %s", type(exc).__name__)
            raise ReceiptSinkUnavailable(f"receipt sink failed: {type(exc).__name__}") from exc
        if notify and self.on_receipt is not None:
            self.on_receipt(sealed)
        return sealed

    async def _resume(self) -> None:
        async with self._lock:
            if self._ready:
                return
            sealed_up_to = self._chain.next_seq if self._broken else 0
            if self._broken:
                # The lost receipts may have carried price tables: record them again.
                self._recorded.clear()
            last = await self.sink.tail()
            if last is not None:
                self._chain.resume(last)
            self._ready = True
            self._broken = False
            lost = sealed_up_to - self._chain.next_seq
            if lost > 0:
                await self.write(self._recovery_receipt(lost), notify=False)

    def _recovery_receipt(self, lost: int) -> Receipt:
        """The audit record of a trail that failed and was reopened: which receipts it lost."""
        first = self._chain.next_seq
        logger.error("receipt trail reopened; %d receipt(s) from seq %d were lost", lost, first)
        subject = self.subject(
            request_id=f"trail-recovered:{first}", tenant_id="*", capability="trail:recovered"
        )
        outcome = Outcome(
            decision=Decision(True, "trail_recovered"),
            status="alert",
            error=(
                f"the receipt trail failed and was reopened: {lost} receipt(s) sealed as seq "
                f"{first}-{first + lost - 1} were never written"
            ),
        )
        return self.receipt(subject, outcome, None, self.pricing())

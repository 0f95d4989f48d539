"""One upstream attempt and its reservation: the only code in the proxy that settles a call.

An :class:`UpstreamAttempt` is opened right after :meth:`Gate.admit` and settles the permit
exactly once, when its ``async with`` block exits, whatever happened inside (an answer, a
provider error, a broken connection, a garbled body, a client that left, a cancellation, a
bug). The code that talks to the provider only *records* what it saw; how the attempt ended
then decides the charge, in :meth:`UpstreamAttempt._settlement`:

====================================  ==========================  =======================
what happened                         status                      charged
====================================  ==========================  =======================
answered, usage reported              ``ok``                      the usage
answered, usage unknown               ``ok``                      the reservation
stream ended, final usage reported    ``ok``                      the usage
stream without its final usage        ``ok`` / ``upstream_error``  the reservation
(broke, cut, ended early, no usage)   / ``cancelled``
provider answered an error            ``upstream_error``          nothing
nothing reached the provider          ``upstream_error``          nothing
sent, and the answer never came       ``upstream_error``          the reservation
(timeout, reset, garbled body)
client left a stream, which was read  ``cancelled``               the usage
on to its end and reported usage
cancelled after the request was sent  ``cancelled``               the reservation
cancelled before it was sent          ``cancelled``               nothing
====================================  ==========================  =======================

Why the reservation, and never what was counted: a provider bills what it *generated*, and
a stream shows only what it *delivered* — hidden reasoning, or output generated past the cut,
never reaches the proxy. The reservation is the one upper bound of the bill (the output limit
the provider is sent is what was reserved for), so a call of unknown usage is charged it; a
counted figure is charged only when it is higher still (an upstream that ignored the limit).

While the attempt lives, its owner renews the hold every third of its TTL, so a long stream
or a slow answer never outlives its reservation (the budget cannot be spent twice meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from aegis.core import Gate, Permit, Receipt, ReceiptStatus, Usage, UsageSource
from aegis.proxy.timing import upstream_answered

__all__ = ["Ending", "Failure", "UpstreamAttempt"]

logger = logging.getLogger(__name__)

Ending = Literal["open", "answered", "refused", "unreachable", "lost", "broken", "cancelled"]
"""How an attempt ended, as the code that ran it recorded."""


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that produced no answer of its own to give the client."""

    status: int
    """The status to answer with: the provider's, or 502/504 when it gave none."""
    reason: str
    body: bytes = b""
    """The provider's error body in the client's API shape (empty: the proxy words it)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    retryable: bool = True
    """Another provider may serve the call."""


UsageReader = Callable[[bool], tuple[Usage, UsageSource] | None]
"""Asked at settlement (with whether the stream reached its end) for what a stream used:
``reported`` when that is the provider's final figure, else ``counted`` (a lower bound)."""


class UpstreamAttempt:
    """Owns one attempt's permit: records what the upstream did, settles once on exit."""

    __slots__ = (
        "_read_to_end",
        "_renewer",
        "_renewing",
        "_sent",
        "_usage_reader",
        "ending",
        "error",
        "failure",
        "gate",
        "permit",
        "receipt",
        "status",
        "upstream_status",
        "usage",
        "usage_source",
    )

    def __init__(self, gate: Gate, permit: Permit) -> None:
        self.gate = gate
        self.permit = permit
        self.ending: Ending = "open"
        self.status: ReceiptStatus = "ok"
        self.upstream_status: int | None = None
        self.usage: Usage | None = None
        self.usage_source: UsageSource | None = None
        self.error: str | None = None
        self.failure: Failure | None = None
        """Set when the attempt ended without an answer (the loop reads it to go on)."""
        self.receipt: Receipt | None = None
        """Set once the attempt is settled."""
        self._usage_reader: UsageReader | None = None
        self._sent = False
        self._read_to_end = False
        self._renewer: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Task[None] | None = None

    # -- what the forwarding code records -------------------------------------------------

    def sent(self) -> None:
        """The request is going out: from here the provider may bill it."""
        self._sent = True

    def answered(self, status: int, usage: Usage | None, source: UsageSource = "reported") -> None:
        """The provider answered ``status`` with this usage (``None``: not reported)."""
        self.ending = "answered"
        self.upstream_status = status
        if usage is not None:
            self.usage, self.usage_source = usage, source

    def refused(self, failure: Failure) -> None:
        """The provider answered an error: nothing was generated, nothing is charged."""
        self._fail("refused", failure)

    def unreachable(self, reason: str) -> None:
        """The request never reached the provider (connect failed): nothing to pay for."""
        self._fail("unreachable", Failure(502, reason))

    def lost(self, reason: str, *, status: int = 502) -> None:
        """The request went out and no usable answer came back (timeout, reset, a body that
        is not what the API sends): the provider may bill it, so the reservation is charged."""
        self._fail("lost", Failure(status, reason))

    def streaming(self, read_usage: UsageReader) -> None:
        """A stream started; ``read_usage`` tells at settlement what it used."""
        self.ending = "answered"
        self.upstream_status = 200
        self._usage_reader = read_usage

    def broke(self, reason: str) -> None:
        """A started stream failed (cut, garbled event, incomplete)."""
        self.ending, self.status, self.error = "broken", "upstream_error", reason

    def stopped(self, reason: str) -> None:
        """Aegis ended a stream that ran past its limit (a normal end, noted)."""
        self.error = reason

    def client_left(self) -> None:
        self.ending, self.status, self.error = "cancelled", "cancelled", "client disconnected"

    def read_to_end(self) -> None:
        """The stream the client left was read on to its proper end: its usage is final."""
        self._read_to_end = True

    def _fail(self, ending: Ending, failure: Failure) -> None:
        self.ending, self.status, self.error, self.failure = (
            ending,
            "upstream_error",
            failure.reason,
            failure,
        )
        if ending == "refused":
            self.upstream_status = failure.status

    # -- settlement -----------------------------------------------------------------------

    async def __aenter__(self) -> UpstreamAttempt:
        # A timer, not a task: most calls end long before their first renewal is due, and a
        # cancelled timer costs nothing on the hot path.
        self._schedule_renewal()
        return self

    def _schedule_renewal(self) -> None:
        loop = asyncio.get_running_loop()
        self._renewer = loop.call_later(self.permit.policy.reservation_ttl_s / 3, self._renew)

    def _renew(self) -> None:
        """Renew the hold every third of its TTL while the call lives (a renewal that fails
        is tried again a third of a TTL later, before the hold can lapse)."""
        self._renewing = asyncio.get_running_loop().create_task(self._renew_once())
        self._schedule_renewal()

    async def _renew_once(self) -> None:
        permit = self.permit
        try:
            await self.gate.ledger.renew(
                tenant_id=permit.tenant_id,
                hold_id=permit.request_id,
                ttl_s=permit.policy.reservation_ttl_s,
            )
        except Exception as exc:
            logger.warning(
                "renewing the hold of %s failed: %s", permit.request_id, type(exc).__name__
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                self.client_left()
            elif self.ending in ("open", "answered"):
                # A failure of ours while the call was out: the provider may have billed it.
                self.ending, self.status = "lost", "upstream_error"
                self.error = f"proxy failed: {type(exc).__name__}"
        if self._renewer is not None:
            # The call is over; a renewal still in flight finds the hold resolved (harmless).
            self._renewer.cancel()
        if self._renewing is not None:
            self._renewing.cancel()
        upstream_answered()  # operator metrics: every attempt ends in exactly one settle
        usage, source = self._settlement()
        # Settling must finish even while the handler is cancelled (client gone, shutdown).
        self.receipt = await asyncio.shield(
            self.gate.settle(
                self.permit,
                status=self.status,
                usage=usage,
                usage_source=source,
                upstream_status=self.upstream_status,
                error=self.error,
            )
        )

    def _settlement(self) -> tuple[Usage | None, UsageSource | None]:
        if self.usage is not None:
            return self.usage, self.usage_source
        reservation: tuple[Usage, UsageSource] = (self.permit.worst_case, "reservation")
        if self._usage_reader is not None:
            ended = self.ending == "answered" or self._read_to_end
            read = self._usage_reader(ended)
            if read is not None and read[1] == "reported":
                return read
            if read is not None and self._costs_more(read[0]):
                return read  # above the hold: posted as an overage, never clipped
            return reservation
        if self.ending == "lost" or (self.ending == "cancelled" and self._sent):
            return reservation
        return None, None  # ok: the Gate charges the reservation; otherwise it releases

    def _costs_more(self, usage: Usage) -> bool:
        return self.permit.price.cost_nanos(usage) > self.permit.reserved_nanos

"""A governed SDK stream: yields the SDK's chunks as they arrive and settles exactly once.

Settlement, by how the stream ended:

* it finished: the reported usage (``usage_source="reported"``), or the counted upper bound
  when the upstream reported none (``"counted"``);
* the upstream overran the output limit: the stream ends cleanly at the last chunk within the
  limit, billed the counted output capped at the limit (``"counted"``, and an error note);
* the upstream failed mid-stream: status ``upstream_error``, the counted usage if any chunk had
  arrived (else the reservation is released), and the SDK's exception propagates unchanged;
* the consumer stopped early (``break``, ``aclose()``, leaving ``async with``) or its task was
  cancelled: status ``cancelled``, billed like a failure.

Leaving an ``async for`` with ``break`` closes the loop's iterator; asyncio then finalizes it
on the next loop iteration, which settles. ``async with`` (or ``await stream.aclose()``)
settles before the next statement runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

import openai
from aegis.adapters.openai.meter import OutputMeter
from aegis.core import Gate, Permit, Receipt, ReceiptStatus, Usage, UsageSource

__all__ = ["GovernedStream"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_DROPPED: set[asyncio.Task[Receipt]] = set()
"""Settlements of dropped streams, kept referenced until they finish."""


@dataclass(frozen=True, slots=True)
class StreamProtocol:
    """How one API's stream items are metered and read."""

    observe: Callable[[OutputMeter, Any], bool]
    """Meter an item; ``False`` when it is beyond the output limit."""
    is_usage_only: Callable[[Any], bool]
    """The item only carries usage the adapter asked for (withheld unless the caller did)."""
    failure: Callable[[Any], str | None] | None
    """Why the stream failed, if this item says it did (a Responses ``response.failed``);
    ``None`` when items never say so."""
    limit_name: str
    """The request field holding the output limit, for receipts."""


def describe_error(exc: BaseException) -> str:
    """A receipt's error text: the exception class and the upstream's error code and type.

    The upstream's message is left out: some echo part of the API key.
    """
    parts = [type(exc).__name__]
    if isinstance(exc, openai.APIError):
        parts += [str(v) for v in (exc.type, exc.code) if v]
    return ": ".join(parts)


def upstream_status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, if any."""
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


class GovernedStream(Generic[T]):
    """An async iterator over an SDK stream whose reservation settles once, however it ends."""

    def __init__(
        self,
        *,
        gate: Gate,
        permit: Permit,
        upstream: openai.AsyncStream[T],
        meter: OutputMeter,
        protocol: StreamProtocol,
        withhold_usage: bool,
    ) -> None:
        self.gate = gate
        self.permit = permit
        self.meter = meter
        self.receipt: Receipt | None = None
        """The receipt, once the stream has settled."""
        self._upstream = upstream
        self._protocol = protocol
        self._withhold_usage = withhold_usage
        self._received = 0
        self._started = False
        self._iterator: weakref.ref[AsyncGenerator[T, None]] | None = None
        self._manual: AsyncIterator[T] | None = None
        self._settling: asyncio.Future[Receipt] | None = None
        self._renew_every_s = permit.policy.reservation_ttl_s / 3
        self._renewed_at = gate.clock.monotonic()

    @property
    def response(self) -> Any:
        """The upstream HTTP response (status, headers) the SDK stream reads."""
        return self._upstream.response

    def __aiter__(self) -> AsyncIterator[T]:
        # Only a weak reference is kept, so a loop that breaks drops the last reference and
        # asyncio closes the iterator, which settles the stream without waiting for GC of self.
        iterator = None if self._iterator is None else self._iterator()
        if iterator is None:
            iterator = self._run()
            self._iterator = weakref.ref(iterator)
        return iterator

    async def __anext__(self) -> T:
        if self._manual is None:
            self._manual = self.__aiter__()
        return await self._manual.__anext__()

    async def __aenter__(self) -> GovernedStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # A stream dropped before it settled would pin its reservation until the TTL; settle it
        # on the loop, as asyncio does for abandoned async generators.
        if getattr(self, "_settling", True) is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if not loop.is_closed():
            task = loop.create_task(self.aclose())
            _DROPPED.add(task)
            task.add_done_callback(_DROPPED.discard)

    async def aclose(self) -> Receipt:
        """Stop the stream (if it still runs), settle, and return the receipt."""
        iterator = None if self._iterator is None else self._iterator()
        if iterator is not None:
            await iterator.aclose()
        if self._settling is None:
            await self._settle("cancelled", error="consumer stopped the stream")
        assert self._settling is not None
        return await self._settling

    async def _run(self) -> AsyncGenerator[T, None]:
        if self._settling is not None or self._started:
            return
        self._started = True
        protocol = self._protocol
        meter = self.meter
        # Locals: this loop runs once per chunk.
        observe = protocol.observe
        failure_of = protocol.failure
        usage_only = protocol.is_usage_only if self._withhold_usage else None
        monotonic = self.gate.clock.monotonic
        renew_after = self._renewed_at + self._renew_every_s
        failure: str | None = None
        try:
            async for item in self._upstream:
                self._received += 1
                if not observe(meter, item):
                    limit = self.permit.max_output_tokens
                    await self._settle(
                        "ok",
                        error=f"upstream exceeded {protocol.limit_name}; stream ended by aegis "
                        f"at the reserved output ({limit} tokens)",
                    )
                    return
                if failure_of is not None and failure is None:
                    failure = failure_of(item)
                if usage_only is not None and usage_only(item):
                    continue
                yield item
                if monotonic() > renew_after:
                    await self._renew()
                    renew_after = self._renewed_at + self._renew_every_s
        except BaseException as exc:
            if isinstance(exc, GeneratorExit | asyncio.CancelledError):
                await self._settle("cancelled", error="consumer stopped the stream")
            else:
                await self._settle(
                    "upstream_error",
                    error="stream interrupted: " + describe_error(exc),
                    upstream_status=upstream_status_of(exc) or self.response.status_code,
                )
            raise
        if failure is not None:
            await self._settle("upstream_error", error=failure)
        else:
            await self._settle("ok")

    async def _renew(self) -> None:
        # A stream may outlive the reservation's TTL; the hold must not expire under it.
        self._renewed_at = self.gate.clock.monotonic()
        try:
            await self.gate.ledger.renew(
                tenant_id=self.permit.tenant_id,
                hold_id=self.permit.request_id,
                ttl_s=self.permit.policy.reservation_ttl_s,
            )
        except Exception as exc:
            # A late commit still posts (flagged), so a failed renewal must not kill the stream.
            logger.warning("reservation renewal failed: %s", type(exc).__name__)

    def _usage(self, status: ReceiptStatus, cut: bool) -> tuple[Usage | None, UsageSource | None]:
        meter = self.meter
        if status == "ok" and not cut and meter.usage is not None:
            return meter.usage, "reported"
        if status != "ok" and self._received == 0:
            return None, None
        if status != "ok" and meter.usage is not None and not meter.exceeded:
            # A failed Responses stream may still report what it used.
            reported = meter.usage
            counted = meter.counted_usage(self.permit.input_tokens)
            if reported.output_tokens >= counted.output_tokens:
                return reported, "reported"
        return meter.counted_usage(self.permit.input_tokens), "counted"

    async def _settle(
        self,
        status: ReceiptStatus,
        *,
        error: str | None = None,
        upstream_status: int | None = None,
    ) -> None:
        if self._settling is not None:
            await self._settling
            return
        loop = asyncio.get_running_loop()
        self._settling = settling = loop.create_future()
        try:
            with contextlib.suppress(Exception):
                await self._upstream.close()
            usage, source = self._usage(status, cut=error is not None and status == "ok")
            if upstream_status is None:
                upstream_status = self.response.status_code
            settle = self.gate.settle(
                self.permit,
                status=status,
                usage=usage,
                usage_source=source,
                upstream_status=upstream_status,
                error=error,
            )
            # A stream that is being cancelled must still settle; a finished one needs no
            # extra task for that.
            receipt = await (settle if status == "ok" else asyncio.shield(settle))
        except BaseException as exc:
            settling.set_exception(exc)
            # Retrieved here so a settlement nobody awaits again is not reported as lost.
            settling.exception()
            raise
        self.receipt = receipt
        settling.set_result(receipt)

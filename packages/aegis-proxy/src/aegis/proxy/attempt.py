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
stream ended or broke, usage counted  ``ok`` / ``upstream_error``  what was counted
provider answered an error            ``upstream_error``          nothing
nothing reached the provider          ``upstream_error``          nothing
sent, and the answer never came       ``upstream_error``          the reservation
(timeout, reset, garbled body)
client left / cancelled               ``cancelled``               what was counted, else
                                                                  nothing
====================================  ==========================  =======================
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from aegis.core import Gate, Permit, Receipt, ReceiptStatus, Usage, UsageSource
from aegis.proxy.timing import upstream_answered

__all__ = ["Ending", "Failure", "UpstreamAttempt"]

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
"""Asked at settlement (with whether the stream completed) for what a stream used so far."""


class UpstreamAttempt:
    """Owns one attempt's permit: records what the upstream did, settles once on exit."""

    __slots__ = (
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

    # -- what the forwarding code records -------------------------------------------------

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
        return self

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
        if self._usage_reader is not None:
            counted = self._usage_reader(self.ending == "answered")
            if counted is not None:
                return counted
        if self.ending == "lost":
            return self.permit.worst_case, "reservation"
        return None, None  # ok: the Gate charges the reservation; otherwise it releases

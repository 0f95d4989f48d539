"""The few timestamps a receipt lacks: when each upstream attempt was sent and answered, and
when a stream's first event arrived.

The operator middleware puts one :class:`RequestTiming` in a context variable per request; the
hot path calls the module functions below, which are a context-variable read and a monotonic
clock read at most (and nothing at all beyond the read while no middleware set a timing).
Receipts written during the request are collected on the same object, because the Gate writes
them in the request's context (``asyncio.shield`` copies it).
"""

from __future__ import annotations

from contextvars import ContextVar
from time import monotonic

from aegis.core import Receipt

__all__ = [
    "RequestTiming",
    "current_timing",
    "first_chunk",
    "upstream_answered",
    "upstream_sent",
]


class RequestTiming:
    """Monotonic timestamps of one proxied request, and the receipts it produced."""

    __slots__ = (
        "attempts",
        "first_chunk_mono",
        "receipts",
        "started_mono",
        "upstream_s",
        "upstream_started_mono",
    )

    def __init__(self, started_mono: float) -> None:
        self.started_mono = started_mono
        self.attempts = 0
        """Upstream calls sent (more than one: fallback happened)."""
        self.upstream_started_mono = 0.0
        self.upstream_s = 0.0
        """Time spent waiting on upstreams, summed over attempts."""
        self.first_chunk_mono = 0.0
        self.receipts: list[Receipt] = []


_CURRENT: ContextVar[RequestTiming | None] = ContextVar("aegis_request_timing", default=None)


def current_timing() -> ContextVar[RequestTiming | None]:
    """The context variable the operator middleware sets."""
    return _CURRENT


def upstream_sent() -> None:
    """An upstream call is being sent now."""
    timing = _CURRENT.get()
    if timing is not None:
        timing.attempts += 1
        timing.upstream_started_mono = monotonic()


def upstream_answered() -> None:
    """The upstream call in flight is over (answered, failed or abandoned): settlement starts."""
    timing = _CURRENT.get()
    if timing is not None and timing.upstream_started_mono:
        timing.upstream_s += monotonic() - timing.upstream_started_mono
        timing.upstream_started_mono = 0.0


def first_chunk() -> None:
    """A streamed event reached the proxy (only the first call per request records)."""
    timing = _CURRENT.get()
    if timing is not None and not timing.first_chunk_mono:
        timing.first_chunk_mono = monotonic()

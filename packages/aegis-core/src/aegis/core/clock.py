"""Time as the Gate and the ledgers see it: injectable, so tests never sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """A source of wall time (for windows and expiry) and monotonic time (for latency)."""

    def time(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards."""
        ...


class SystemClock:
    """The real clock."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    __slots__ = ("_mono", "_now")

    def __init__(self, start: datetime | float = 0.0) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("ManualClock needs an aware datetime")
            start = start.astimezone(UTC).timestamp()
        self._now = float(start)
        self._mono = 0.0

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds
        self._mono += seconds

    def set(self, when: datetime) -> None:
        """Jump wall time to ``when`` (forward only)."""
        self.advance(when.astimezone(UTC).timestamp() - self._now)

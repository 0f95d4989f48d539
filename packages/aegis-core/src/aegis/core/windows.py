"""Calendar budget windows in UTC: a day starts at 00:00 UTC, a month on the 1st."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal, get_args

__all__ = ["WINDOWS", "Window", "window_span"]

Window = Literal["minute", "hour", "day", "month"]
WINDOWS: Final[tuple[str, ...]] = get_args(Window)

_SECONDS: Final = {"minute": 60, "hour": 3600, "day": 86400}


def window_span(window: Window, now_s: float) -> tuple[str, float]:
    """The account key of the window containing ``now_s`` and the epoch second it ends.

    The key names the window's start (``day:2026-11-26``), so a new window is a new account and
    a reset never needs a write that could race.
    """
    size = _SECONDS.get(window)
    if size is not None:
        start = int(now_s // size) * size
        stamp = datetime.fromtimestamp(start, UTC)
        if window == "day":
            label = stamp.strftime("%Y-%m-%d")
        elif window == "hour":
            label = stamp.strftime("%Y-%m-%dT%H")
        else:
            label = stamp.strftime("%Y-%m-%dT%H:%M")
        return f"{window}:{label}", float(start + size)
    now = datetime.fromtimestamp(now_s, UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    end = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return f"month:{now.year:04d}-{now.month:02d}", end

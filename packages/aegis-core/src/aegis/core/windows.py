"""Calendar budget windows in UTC: a day starts at 00:00 UTC, a month on the 1st."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
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
        return _fixed_span(window, int(now_s // size) * size, size)
    return _month_span_of_day(int(now_s // 86_400))


# Every call in a window asks for the same span: remember the last few.
@lru_cache(maxsize=64)
def _fixed_span(window: str, start: int, size: int) -> tuple[str, float]:
    stamp = datetime.fromtimestamp(start, UTC)
    if window == "day":
        label = stamp.strftime("%Y-%m-%d")
    elif window == "hour":
        label = stamp.strftime("%Y-%m-%dT%H")
    else:
        label = stamp.strftime("%Y-%m-%dT%H:%M")
    return f"{window}:{label}", float(start + size)


@lru_cache(maxsize=16)
def _month_span_of_day(day: int) -> tuple[str, float]:
    # Keyed by the day number, so a call needs no datetime arithmetic to find its month.
    return _month_span(datetime.fromtimestamp(day * 86_400, UTC).replace(day=1))


@lru_cache(maxsize=16)
def _month_span(now: datetime) -> tuple[str, float]:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    end = datetime(year, month, 1, tzinfo=UTC).timestamp()
    return f"month:{now.year:04d}-{now.month:02d}", end

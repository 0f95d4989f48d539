"""An incremental server-sent-events parser that keeps each event's original bytes.

Both providers stream with server-sent events; this one parser serves both adapters. A proxy
forwards events as they arrive; keeping the raw bytes of each event lets it pass them on
untouched (or withhold one) without re-serializing anything. Events end at a blank line
(``\\n\\n``, ``\\r\\n\\r\\n`` or ``\\r\\r``); ``data:`` lines are joined with ``\\n``.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["SseEvent", "SseParser"]

_BOUNDARY: Final = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE: Final = re.compile(rb"\r\n|\n|\r")


class SseEvent(NamedTuple):
    """One event: its bytes as received and its parsed fields.

    A named tuple rather than a frozen dataclass: one is built per streamed event, and tuples
    are built several times faster.
    """

    raw: bytes
    """The event including its terminating blank line."""
    event: str | None
    """The ``event:`` field (Responses streams name their events), if any."""
    data: bytes | None
    """The joined ``data:`` lines; ``None`` for an event without data (a comment)."""


def _parse(raw: bytes, block: bytes) -> SseEvent:
    if block.startswith(b"data: ") and b"\n" not in block and b"\r" not in block:
        return SseEvent(raw, None, block[6:])
    event: str | None = None
    data: list[bytes] = []
    for line in _LINE.split(block):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return SseEvent(raw, event, b"\n".join(data) if data else None)


class SseParser:
    """Feed bytes as they arrive; get back every event they complete."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[SseEvent]:
        """The events completed by ``data`` (partial events wait for more bytes)."""
        buffer = self._buffer + data if self._buffer else data
        events: list[SseEvent] = []
        start = 0
        if b"\r" not in buffer:
            while (end := buffer.find(b"\n\n", start)) >= 0:
                events.append(_parse(buffer[start : end + 2], buffer[start:end]))
                start = end + 2
        else:
            for match in _BOUNDARY.finditer(buffer):
                end = match.start()
                events.append(_parse(buffer[start : match.end()], buffer[start:end]))
                start = match.end()
        self._buffer = buffer[start:]
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated (what a cut stream left unfinished)."""
        return self._buffer

"""An incremental parser for ``streamGenerateContent?alt=sse`` bodies.

Bytes go in as they arrive from the network, in pieces of any size (an event, a line, or a
JSON object may be split anywhere, including inside a multi-byte character); each complete
event comes out as its parsed JSON object. Events follow the SSE rules: lines end in LF, CRLF
or CR, ``data:`` lines of one event are joined with newlines, other fields and comments are
ignored, and a blank line ends the event. An unfinished event at the end of the body is
discarded, as the SSE specification says.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from .errors import WireError

__all__ = ["SseParser"]


class SseParser:
    """Feed raw body bytes; get parsed Gemini stream chunks (``dict``) back."""

    __slots__ = ("_data", "_decoder", "_pending_cr", "_tail")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._tail = ""
        self._data: list[str] = []
        self._pending_cr = False

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        """Parse ``raw``, the next bytes of the body; returns the events it completed."""
        text = self._decoder.decode(raw)
        if text and self._pending_cr:
            self._pending_cr = False
            if text.startswith("\n"):
                text = text[1:]  # the LF of a CRLF split across two reads
        if not text:
            return []
        buffer = self._tail + text
        if "\r" in buffer:
            if buffer.endswith("\r"):
                self._pending_cr = True
            buffer = buffer.replace("\r\n", "\n").replace("\r", "\n")
        lines = buffer.split("\n")
        self._tail = lines.pop()
        events: list[dict[str, Any]] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._decode("\n".join(self._data)))
                    self._data = []
            elif line.startswith("data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(" ") else value)
        return events

    @staticmethod
    def _decode(payload: str) -> dict[str, Any]:
        try:
            value = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise WireError(f"stream event is not JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(value, dict):
            raise WireError("stream event is not a JSON object")
        return value

    @property
    def has_partial_event(self) -> bool:
        """Bytes of an event arrived whose end has not (a stream cut here lost it)."""
        return bool(self._data or self._tail.strip())

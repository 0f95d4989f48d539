"""Gemini's ``streamGenerateContent?alt=sse`` stream, event by event as parsed JSON.

Bytes go in as they arrive from the network, in pieces of any size (an event, a line, or a
JSON object may be split anywhere, including inside a multi-byte character); each complete
event comes out as its parsed JSON object. Framing is aegis-core's :class:`~aegis.core.SseParser`
(lines end in LF, CRLF or CR, ``data:`` lines of one event are joined with newlines, other
fields and comments are ignored, a blank line ends the event); an unfinished event at the end
of the body is discarded, as the SSE specification says.
"""

from __future__ import annotations

import json
from typing import Any

from aegis.core import SseParser as _EventParser

from .errors import WireError

__all__ = ["SseParser"]


class SseParser:
    """Feed raw body bytes; get parsed Gemini stream chunks (``dict``) back."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events = _EventParser()

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        """Parse ``raw``, the next bytes of the body; returns the events it completed."""
        return [self._decode(e.data) for e in self._events.feed(raw) if e.data is not None]

    @staticmethod
    def _decode(payload: bytes) -> dict[str, Any]:
        try:
            value = json.loads(payload)
        except UnicodeDecodeError as exc:
            raise WireError(f"stream event is not UTF-8: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise WireError(f"stream event is not JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(value, dict):
            raise WireError("stream event is not a JSON object")
        return value

    @property
    def has_partial_event(self) -> bool:
        """Bytes of an event arrived whose end has not (a stream cut here lost it)."""
        return bool(self._events.pending.strip())

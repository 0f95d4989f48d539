"""Readers of raw upstream streams, for a proxy that forwards bytes rather than SDK objects.

Feed each network read to :meth:`ChatStreamReader.feed` (or the Responses reader); each event
comes back with its original bytes and what it means for forwarding and billing:

* ``chunk``: forward it;
* ``usage``: the usage-only final chat chunk; forward it only if the client asked for usage;
* ``over_limit``: the upstream overran the output limit; do not forward it, end the stream
  (send :data:`DONE_EVENT` to a chat client) and bill from the meter;
* ``done``: ``data: [DONE]``; ``terminal``: a Responses stream's final event (forward both);
* ``error``: an error event (forward it; the stream is failing);
* ``other``: comments and anything unparseable (forward it).
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal, NamedTuple

from aegis.adapters.openai.errors import OpenAIErrorInfo, parse_error_body
from aegis.adapters.openai.meter import (
    RESPONSES_TERMINAL_EVENTS,
    OutputMeter,
    observe_chat_chunk,
    observe_responses_event,
)
from aegis.adapters.openai.usage import usage_from_responses_object
from aegis.core import SseEvent, SseParser, Usage

__all__ = ["DONE_EVENT", "ChatStreamReader", "EventKind", "ResponsesStreamReader", "StreamEvent"]

DONE_EVENT: Final = b"data: [DONE]\n\n"
EventKind = Literal["chunk", "usage", "over_limit", "done", "terminal", "error", "other"]


class StreamEvent(NamedTuple):
    """One upstream event, classified (a named tuple: one is built per streamed event)."""

    raw: bytes
    kind: EventKind
    data: Any = None
    """The parsed JSON of the event's data, if it had any."""
    usage: Usage | None = None
    """The usage this event reported, if any."""
    error: OpenAIErrorInfo | None = None


_decode: Final = json.JSONDecoder().decode


def _json(event: SseEvent) -> Any:
    if event.data is None:
        return None
    try:
        # Decoding first skips json.loads's byte-encoding detection on every event.
        return _decode(event.data.decode("utf-8"))
    except ValueError:
        return None


class ChatStreamReader:
    """Classifies and meters a chat completions SSE stream."""

    __slots__ = ("_parser", "done", "error", "meter")

    def __init__(self, *, max_output_tokens: int | None, n: int = 1) -> None:
        self._parser = SseParser()
        self.meter = OutputMeter(max_output_tokens=max_output_tokens, n=n)
        self.done = False
        """``data: [DONE]`` arrived."""
        self.error: OpenAIErrorInfo | None = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        """The events ``data`` completes, in order."""
        return [self._classify(event) for event in self._parser.feed(data)]

    def _classify(self, event: SseEvent) -> StreamEvent:
        if event.data == b"[DONE]":
            self.done = True
            return StreamEvent(event.raw, "done")
        chunk = _json(event)
        if not isinstance(chunk, dict):
            return StreamEvent(event.raw, "other", chunk)
        if chunk.get("error"):
            self.error = parse_error_body(chunk)
            return StreamEvent(event.raw, "error", chunk, error=self.error)
        within = observe_chat_chunk(self.meter, chunk)
        usage = None if chunk.get("usage") is None else self.meter.usage
        if not within:
            return StreamEvent(event.raw, "over_limit", chunk, usage)
        if usage is not None and not chunk.get("choices"):
            return StreamEvent(event.raw, "usage", chunk, usage)
        return StreamEvent(event.raw, "chunk", chunk, usage)


class ResponsesStreamReader:
    """Classifies and meters a Responses API SSE stream."""

    __slots__ = ("_parser", "done", "error", "meter")

    def __init__(self, *, max_output_tokens: int | None) -> None:
        self._parser = SseParser()
        self.meter = OutputMeter(max_output_tokens=max_output_tokens)
        self.done = False
        """A terminal event (completed, incomplete, failed) arrived."""
        self.error: OpenAIErrorInfo | None = None

    def feed(self, data: bytes) -> list[StreamEvent]:
        """The events ``data`` completes, in order."""
        return [self._classify(event) for event in self._parser.feed(data)]

    def _classify(self, event: SseEvent) -> StreamEvent:
        data = _json(event)
        if not isinstance(data, dict):
            return StreamEvent(event.raw, "other", data)
        kind = data.get("type", event.event)
        if kind == "error":
            self.error = parse_error_body(data)
            return StreamEvent(event.raw, "error", data, error=self.error)
        if not observe_responses_event(self.meter, data):
            return StreamEvent(event.raw, "over_limit", data)
        if kind in RESPONSES_TERMINAL_EVENTS:
            self.done = True
            response = data.get("response")
            usage = usage_from_responses_object(response) if response else None
            if kind == "response.failed":
                self.error = parse_error_body(response or {})
            return StreamEvent(event.raw, "terminal", data, usage)
        return StreamEvent(event.raw, "chunk", data)

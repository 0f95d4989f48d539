"""Anthropic's Messages stream: metering its events, and reading raw SSE bytes for a proxy.

A stream is named SSE events: ``message_start`` (the message, with usage: input and cache
counts and a first output count), then per content block ``content_block_start``, any number of
``content_block_delta`` (``text_delta``, ``thinking_delta``, ``input_json_delta``,
``citations_delta``, ``signature_delta``) and ``content_block_stop``, then ``message_delta``
(``stop_reason`` and *cumulative* usage) and ``message_stop``; ``ping`` may come at any time and
``error`` (``{"type": "error", "error": {...}}``) ends a failing stream.

:class:`StreamMeter` follows the events (parsed JSON or the SDK's event objects). The usage the
stream reports is the bill; a stream that ends before its final ``message_delta`` is billed from
what was counted: the reported input (else the request's bound), and the larger of the reported
output and the UTF-8 length of every delta, at most the output limit. Thinking is billed in full
while a stream may show only a summary of it, so a cut stream that had started thinking is
billed the whole output limit. An upstream that reports more output than the limit is over it,
and the stream must end there.

:class:`MessagesStreamReader` classifies raw bytes event by event, keeping each event's bytes,
for a proxy that forwards the stream untouched (:meth:`MessagesStreamReader.classify` takes
events a caller framed itself with :class:`aegis.core.SseParser`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final, Literal, NamedTuple

from aegis.core import SseEvent, SseParser, Usage, text_tokens_upper_bound, wire_field

from .errors import AnthropicErrorInfo, parse_error_body
from .usage import AnthropicUsage, read_usage

__all__ = ["EventKind", "MessagesStreamReader", "StreamEvent", "StreamMeter"]

EventKind = Literal["event", "over_limit", "done", "error", "other"]
_DELTA_TEXT: Final = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
_THINKING_BLOCKS: Final = frozenset({"thinking", "redacted_thinking"})


class StreamMeter:
    """One streamed reply's reported usage, counted output, and whether it overran."""

    __slots__ = (
        "done",
        "error",
        "events",
        "exceeded",
        "final",
        "limit",
        "output_bytes",
        "reported",
        "stop_reason",
        "thinking",
    )

    def __init__(self, *, max_output_tokens: int) -> None:
        self.limit = max_output_tokens
        """Output tokens the response may bill (the permit's)."""
        self.reported: AnthropicUsage | None = None
        """The usage reported so far (``message_start``, updated by each ``message_delta``)."""
        self.final = False
        """A ``message_delta`` reported the final output count."""
        self.output_bytes = 0
        self.thinking = False
        """A thinking block started (its billed tokens may exceed what the stream shows)."""
        self.exceeded = False
        self.done = False
        """``message_stop`` arrived."""
        self.stop_reason: str | None = None
        self.error: AnthropicErrorInfo | None = None
        self.events = 0

    def observe(self, event: Any) -> bool:
        """Meter one event; ``False`` when it shows more output than the limit allows (do not
        deliver it; end the stream)."""
        self.events += 1
        kind = wire_field(event, "type")
        if kind == "content_block_delta":
            delta = wire_field(event, "delta")
            key = _DELTA_TEXT.get(wire_field(delta, "type"))
            if key is not None:
                text = wire_field(delta, key)
                if isinstance(text, str):
                    self.output_bytes += text_tokens_upper_bound(text)
            elif wire_field(delta, "type") == "citations_delta":
                self.output_bytes += len(json.dumps(_plain(wire_field(delta, "citation"))))
        elif kind == "content_block_start":
            block = wire_field(event, "content_block")
            block_type = wire_field(block, "type")
            if block_type in _THINKING_BLOCKS:
                self.thinking = True
            name = wire_field(block, "name")
            if isinstance(name, str):
                self.output_bytes += text_tokens_upper_bound(name)
        elif kind == "message_start":
            self._report(wire_field(wire_field(event, "message"), "usage"), "message.usage")
        elif kind == "message_delta":
            stop = wire_field(wire_field(event, "delta"), "stop_reason")
            if isinstance(stop, str):
                self.stop_reason = stop
            if self._report(wire_field(event, "usage"), "usage"):
                self.final = True
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.error = parse_error_body(200, _plain(event))
        if self.reported is not None and self.reported.output_tokens > self.limit:
            self.exceeded = True
            return False
        return True

    def _report(self, raw: Any, where: str) -> bool:
        if raw is None:
            return False
        counts, present = read_usage(raw, where)
        if self.reported is None:
            self.reported = counts
        else:
            self.reported = self.reported.merged(counts, present)
        return "output_tokens" in present

    def usage(self) -> Usage | None:
        """The reported usage, once the stream reported its final output count."""
        if self.reported is None or not self.final:
            return None
        return self.reported.to_usage()

    def counted_usage(self, input_tokens: int) -> Usage:
        """The bill of a stream that ended early: the reported prompt (else ``input_tokens``,
        the request's bound) and the counted output, capped at the limit (all of it once a
        thinking block had started)."""
        reported = self.reported
        if self.thinking:
            output = self.limit
        else:
            shown = self.output_bytes + (1 if self.output_bytes else 0)
            output = min(max(shown, reported.output_tokens if reported else 0), self.limit)
        if reported is None:
            return Usage(input_tokens=input_tokens, output_tokens=output)
        billed = reported.to_usage()
        return replace(billed, output_tokens=max(output, billed.output_tokens))


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


class StreamEvent(NamedTuple):
    """One upstream event, classified (a named tuple: one is built per streamed event)."""

    raw: bytes
    kind: EventKind
    data: Any = None
    """The parsed JSON of the event's data, if it had any."""
    error: AnthropicErrorInfo | None = None


_decode: Final = json.JSONDecoder().decode


def _loads(data: bytes) -> Any:
    # Decoding first skips json.loads's byte-encoding detection on every event.
    return _decode(data.decode("utf-8"))


class MessagesStreamReader:
    """Classifies and meters the raw SSE bytes of a Messages stream.

    Kinds: ``event`` (forward it), ``over_limit`` (the upstream overran the output limit: do
    not forward it, end the stream, bill from :attr:`meter`), ``done`` (``message_stop``;
    forward it), ``error`` (an ``error`` event; forward it, the stream is failing), ``other``
    (``ping``, comments, anything unparseable; forward it).

    ``loads`` decodes each event's data (a faster decoder than the standard library's, such as
    the proxy's, must decode and fail as :func:`json.loads` does: raise ``ValueError``).
    """

    __slots__ = ("_loads", "_parser", "meter")

    def __init__(
        self, *, max_output_tokens: int, loads: Callable[[bytes], Any] | None = None
    ) -> None:
        self._parser = SseParser()
        self.meter = StreamMeter(max_output_tokens=max_output_tokens)
        self._loads = loads or _loads

    def feed(self, data: bytes) -> list[StreamEvent]:
        """The events ``data`` completes, in order."""
        return [self.classify(event) for event in self._parser.feed(data)]

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet terminated (what a cut stream left unfinished)."""
        return self._parser.pending

    def classify(self, event: SseEvent) -> StreamEvent:
        """Meter and classify one event already framed by :class:`aegis.core.SseParser` (for
        a caller that parses the stream itself)."""
        if event.data is None:
            return StreamEvent(event.raw, "other")
        try:
            data = self._loads(event.data)
        except ValueError:
            return StreamEvent(event.raw, "other")
        if not isinstance(data, dict):
            return StreamEvent(event.raw, "other", data)
        kind = data.get("type", event.event)
        if kind == "ping":
            return StreamEvent(event.raw, "other", data)
        if not self.meter.observe(data):
            return StreamEvent(event.raw, "over_limit", data)
        if kind == "error":
            return StreamEvent(event.raw, "error", data, self.meter.error)
        if kind == "message_stop":
            return StreamEvent(event.raw, "done", data)
        return StreamEvent(event.raw, "event", data)

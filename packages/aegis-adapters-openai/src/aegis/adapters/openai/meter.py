"""Metering a streamed reply: what it used, and whether the upstream overran its limit.

The usage a stream reports (the final chunk of a chat stream with ``include_usage``; the
``response.completed`` event of a Responses stream) is the bill. A stream that breaks or is
abandoned before then is billed from what was counted: every delta's UTF-8 length, an upper
bound of its tokens, capped at the output limit.

An upstream that honours the output limit sends at most that many tokens per choice, and every
delta that carries text holds at least one token, so it sends at most ``limit`` such deltas per
choice. A delta beyond that proves the upstream ignores the limit; it is reported as over the
limit, and the stream must end there (the reservation cannot cover more).

Hidden output is not visible in a stream: chat streams do not show reasoning tokens, so a
reasoning model's stream that ends before its usage is billed only for what it showed.
"""

from __future__ import annotations

from typing import Any, Final

from aegis.adapters.openai.usage import usage_from_chat, usage_from_responses_object
from aegis.core import Usage, text_tokens_upper_bound, wire_field

__all__ = [
    "RESPONSES_TERMINAL_EVENTS",
    "OutputMeter",
    "count_chat_completion",
    "count_completion",
    "count_responses_object",
    "delta_bytes",
    "observe_chat_chunk",
    "observe_completion_chunk",
    "observe_responses_event",
]

_CHAT_DELTA_TEXT: Final = ("content", "refusal", "reasoning_content", "reasoning")
# Deltas that are output tokens of the reply, counted against the limit.
_RESPONSES_OUTPUT_DELTAS: Final = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_text.delta",
    }
)
# Text the upstream shows beside the reply; billed if counted, not evidence of an overrun.
_RESPONSES_SIDE_DELTAS: Final = frozenset(
    {"response.reasoning_summary_text.delta", "response.audio.transcript.delta"}
)
RESPONSES_TERMINAL_EVENTS: Final = frozenset(
    {"response.completed", "response.incomplete", "response.failed"}
)
"""Events that end a Responses stream and carry the final ``response`` (with its usage)."""


class OutputMeter:
    """Counts one streamed reply's output, keeps its last reported usage, spots overruns."""

    __slots__ = ("_deltas", "exceeded", "limit", "n", "output_bytes", "usage")

    def __init__(self, *, max_output_tokens: int | None, n: int = 1) -> None:
        self.limit = max_output_tokens
        """Output tokens allowed per choice; ``None``: no limit is enforced."""
        self.n = n
        self.output_bytes = 0
        """UTF-8 bytes of every delta seen, an upper bound of the tokens they hold."""
        self.usage: Usage | None = None
        """The last usage the stream reported (usage is cumulative: the last one wins)."""
        self.exceeded = False
        """The upstream sent more than the limit allows."""
        self._deltas: dict[int, int] = {}

    @property
    def deltas(self) -> int:
        """Text-bearing deltas seen, over all choices."""
        return sum(self._deltas.values())

    def add(self, index: int, nbytes: int, *, counts_toward_limit: bool = True) -> bool:
        """Record one delta of ``nbytes`` for choice ``index``; ``False`` if it is beyond the
        limit (do not deliver it)."""
        self.output_bytes += nbytes
        if not counts_toward_limit or self.limit is None:
            return True
        seen = self._deltas.get(index, 0) + 1
        self._deltas[index] = seen
        if seen > self.limit:
            self.exceeded = True
            return False
        return True

    def report(self, usage: Usage) -> bool:
        """Record reported usage; ``False`` if it shows more output than the limit allows."""
        self.usage = usage
        if self.limit is not None and usage.output_tokens > self.limit * self.n:
            self.exceeded = True
            return False
        return True

    def counted_output_tokens(self) -> int:
        """Upper bound of the output seen: its bytes, plus an end token per choice, at most
        the limit (an upstream that honours it cannot have produced more)."""
        counted = self.output_bytes + max(len(self._deltas), 1 if self.output_bytes else 0)
        if self.limit is not None:
            counted = min(counted, self.limit * self.n)
        return counted

    def counted_usage(self, input_tokens: int) -> Usage:
        """The bill of a stream without usage: the input bound and the counted output."""
        return Usage(input_tokens=input_tokens, output_tokens=self.counted_output_tokens())


def _text_bytes(obj: Any, keys: tuple[str, ...]) -> int:
    total = 0
    for key in keys:
        value = wire_field(obj, key)
        if value and isinstance(value, str):
            total += text_tokens_upper_bound(value)
    return total


def delta_bytes(delta: Any) -> int:
    """UTF-8 bytes of the output one chat delta shows (text, refusal, reasoning text, tool
    call names and arguments, audio transcript)."""
    if isinstance(delta, dict):
        # Parsed JSON, the proxy's hot path: plain dict lookups.
        nbytes = 0
        for key in _CHAT_DELTA_TEXT:
            value = delta.get(key)
            if value and isinstance(value, str):
                nbytes += text_tokens_upper_bound(value)
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            for call in tool_calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    nbytes += _text_bytes(function, ("name", "arguments"))
        legacy_call = delta.get("function_call")
        if isinstance(legacy_call, dict):
            nbytes += _text_bytes(legacy_call, ("name", "arguments"))
        audio = delta.get("audio")
        if isinstance(audio, dict):
            nbytes += _text_bytes(audio, ("transcript",))
        return nbytes
    nbytes = _text_bytes(delta, _CHAT_DELTA_TEXT)
    tool_calls = wire_field(delta, "tool_calls")
    if tool_calls:
        for call in tool_calls:
            nbytes += _text_bytes(wire_field(call, "function"), ("name", "arguments"))
    legacy_call = wire_field(delta, "function_call")
    if legacy_call is not None:
        nbytes += _text_bytes(legacy_call, ("name", "arguments"))
    audio = wire_field(delta, "audio")
    if audio is not None:
        nbytes += _text_bytes(audio, ("transcript",))
    return nbytes


def observe_chat_chunk(meter: OutputMeter, chunk: Any) -> bool:
    """Meter one chat completion chunk (parsed JSON or the SDK's chunk); ``False`` when it
    goes beyond the output limit and must not be delivered."""
    within = True
    choices = wire_field(chunk, "choices")
    if choices:
        for choice in choices:
            delta = wire_field(choice, "delta")
            if delta is None:
                continue
            nbytes = delta_bytes(delta)
            if nbytes:
                index = wire_field(choice, "index")
                if not meter.add(index if isinstance(index, int) else 0, nbytes):
                    within = False
    raw_usage = wire_field(chunk, "usage")
    if raw_usage is not None:
        usage = usage_from_chat(raw_usage, wire_field(chunk, "service_tier"))
        # A usage-only final chunk ends the stream anyway; only a running count can stop it.
        if usage is not None and not meter.report(usage) and choices:
            within = False
    return within


def observe_responses_event(meter: OutputMeter, event: Any) -> bool:
    """Meter one Responses stream event (parsed JSON or the SDK's event); ``False`` when it
    goes beyond the output limit and must not be delivered."""
    kind = wire_field(event, "type")
    if kind in _RESPONSES_OUTPUT_DELTAS:
        delta = wire_field(event, "delta")
        if isinstance(delta, str) and delta:
            return meter.add(0, text_tokens_upper_bound(delta))
    elif kind in _RESPONSES_SIDE_DELTAS:
        delta = wire_field(event, "delta")
        if isinstance(delta, str) and delta:
            meter.add(0, text_tokens_upper_bound(delta), counts_toward_limit=False)
    elif kind in RESPONSES_TERMINAL_EVENTS:
        usage = usage_from_responses_object(wire_field(event, "response"))
        if usage is not None:
            meter.report(usage)
    return True


def count_chat_completion(meter: OutputMeter, completion: Any) -> None:
    """Count the output of a whole (non-streamed) chat completion, as its stream would be
    counted: for a server that answers without ``usage``."""
    choices = wire_field(completion, "choices")
    for choice in choices or ():
        index = wire_field(choice, "index")
        nbytes = delta_bytes(wire_field(choice, "message"))
        if nbytes:
            # One "delta" per choice: the whole message, never beyond the limit on its own.
            meter.add(index if isinstance(index, int) else 0, nbytes)


_RESPONSES_ITEM_TEXT: Final = ("text", "refusal", "arguments", "name", "input")


def count_responses_object(meter: OutputMeter, response: Any) -> None:
    """Count the output of a whole (non-streamed) Responses object: its messages' text and
    refusals, tool call names and arguments, reasoning text and summaries."""

    def visit(item: Any) -> None:
        nbytes = _text_bytes(item, _RESPONSES_ITEM_TEXT)
        if nbytes:
            meter.add(0, nbytes)
        for key in ("content", "summary"):
            parts = wire_field(item, key)
            if isinstance(parts, list):
                for part in parts:
                    visit(part)

    output = wire_field(response, "output")
    for item in output or ():
        visit(item)


def observe_completion_chunk(meter: OutputMeter, chunk: Any) -> bool:
    """Meter one legacy completions chunk (``choices[].text``, the final usage chunk);
    ``False`` when it goes beyond the output limit and must not be delivered."""
    within = True
    choices = wire_field(chunk, "choices")
    for choice in choices or ():
        text = wire_field(choice, "text")
        if isinstance(text, str) and text:
            index = wire_field(choice, "index")
            if not meter.add(index if isinstance(index, int) else 0, text_tokens_upper_bound(text)):
                within = False
    raw_usage = wire_field(chunk, "usage")
    if raw_usage is not None:
        usage = usage_from_chat(raw_usage)
        if usage is not None and not meter.report(usage) and choices:
            within = False
    return within


def count_completion(meter: OutputMeter, completion: Any) -> None:
    """Count the output of a whole legacy completion (``choices[].text``)."""
    for choice in wire_field(completion, "choices") or ():
        text = wire_field(choice, "text")
        if isinstance(text, str) and text:
            index = wire_field(choice, "index")
            meter.add(index if isinstance(index, int) else 0, text_tokens_upper_bound(text))

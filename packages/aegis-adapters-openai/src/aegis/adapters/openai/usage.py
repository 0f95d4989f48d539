"""Usage from OpenAI responses, onto :class:`aegis.core.Usage`.

Each function takes the ``usage`` object (or the whole response) either as parsed JSON or as the
SDK's model: fields are read by key from mappings and by attribute otherwise, so the SDK path
and the proxy share one mapping. Every detail field is optional and may be null. Providers that
report a cached or reasoning count above its total are clamped to the total rather than trusted.

Billed dimensions beyond tokens: audio (``prompt_tokens_details.audio_tokens``,
``completion_tokens_details.audio_tokens``), built-in tool calls (a Responses ``output`` item
of type ``web_search_call`` or ``file_search_call`` is one billed call each) and the tier the
answer says it was served at (``service_tier``).
"""

from __future__ import annotations

from typing import Any, Final

from aegis.core import ServiceTier, Usage, wire_field

__all__ = [
    "service_tier_from_wire",
    "tool_calls_from_output",
    "usage_from_chat",
    "usage_from_chat_completion",
    "usage_from_embeddings",
    "usage_from_responses",
    "usage_from_responses_object",
]


def _tokens(obj: Any, key: str) -> int:
    value = wire_field(obj, key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


# OpenAI's tier names onto the billed tiers. ``auto`` resolves to one of the others in the
# answer; ``scale`` is prepaid capacity billed like standard tokens.
_TIERS: Final[dict[str, ServiceTier]] = {
    "default": "standard",
    "auto": "standard",
    "scale": "standard",
    "standard": "standard",
    "priority": "priority",
    "flex": "flex",
    "batch": "batch",
}
_TOOL_ITEMS: Final = {"web_search_call": "web_search", "file_search_call": "file_search"}


def service_tier_from_wire(value: Any) -> ServiceTier:
    """The billed tier of a ``service_tier`` value (request or answer).

    Absent means standard. A name this table does not know bills as priority, the dearest tier
    there is, so a new premium tier cannot slip under a hard limit."""
    if value is None:
        return "standard"
    return _TIERS.get(value, "priority") if isinstance(value, str) else "priority"


def _usage(
    total_in: int,
    cached: int,
    total_out: int,
    reasoning: int,
    *,
    audio_in: int = 0,
    audio_out: int = 0,
    tool_calls: tuple[tuple[str, int], ...] = (),
    service_tier: ServiceTier = "standard",
) -> Usage:
    cached = min(cached, total_in)
    audio_in = min(audio_in, total_in)
    # OpenAI reports cached and audio counts separately; where they add up to more than the
    # input, the overlap can only be audio that was read from cache.
    cached_audio = max(0, cached + audio_in - total_in)
    reasoning = min(reasoning, total_out)
    return Usage(
        input_tokens=total_in,
        cached_input_tokens=cached,
        output_tokens=total_out,
        reasoning_tokens=reasoning,
        audio_input_tokens=audio_in,
        cached_audio_input_tokens=cached_audio,
        audio_output_tokens=min(audio_out, total_out - reasoning),
        tool_calls=tool_calls,
        service_tier=service_tier,
    )


def usage_from_chat(usage: Any, service_tier: Any = None) -> Usage | None:
    """A chat completion's (or a chunk's) ``usage``: ``prompt_tokens`` (with
    ``prompt_tokens_details.cached_tokens`` and ``audio_tokens``) and ``completion_tokens``
    (with ``completion_tokens_details.reasoning_tokens`` and ``audio_tokens``), served at
    ``service_tier`` (the response's field)."""
    if usage is None:
        return None
    prompt_details = wire_field(usage, "prompt_tokens_details")
    completion_details = wire_field(usage, "completion_tokens_details")
    return _usage(
        _tokens(usage, "prompt_tokens"),
        _tokens(prompt_details, "cached_tokens"),
        _tokens(usage, "completion_tokens"),
        _tokens(completion_details, "reasoning_tokens"),
        audio_in=_tokens(prompt_details, "audio_tokens"),
        audio_out=_tokens(completion_details, "audio_tokens"),
        service_tier=service_tier_from_wire(service_tier),
    )


def usage_from_chat_completion(response: Any) -> Usage | None:
    """The usage of a chat completion response or stream chunk, if it carries one."""
    return usage_from_chat(wire_field(response, "usage"), wire_field(response, "service_tier"))


def usage_from_responses(
    usage: Any, service_tier: Any = None, tool_calls: tuple[tuple[str, int], ...] = ()
) -> Usage | None:
    """A Responses API ``usage``: ``input_tokens`` (with ``input_tokens_details.cached_tokens``)
    and ``output_tokens`` (with ``output_tokens_details.reasoning_tokens``)."""
    if usage is None:
        return None
    return _usage(
        _tokens(usage, "input_tokens"),
        _tokens(wire_field(usage, "input_tokens_details"), "cached_tokens"),
        _tokens(usage, "output_tokens"),
        _tokens(wire_field(usage, "output_tokens_details"), "reasoning_tokens"),
        tool_calls=tool_calls,
        service_tier=service_tier_from_wire(service_tier),
    )


def tool_calls_from_output(output: Any) -> tuple[tuple[str, int], ...]:
    """Billed built-in tool calls among a Responses ``output`` list's items."""
    counts: dict[str, int] = {}
    if isinstance(output, list | tuple):
        for item in output:
            item_type = wire_field(item, "type")
            kind = _TOOL_ITEMS.get(item_type) if isinstance(item_type, str) else None
            if kind is not None:
                counts[kind] = counts.get(kind, 0) + 1
    return tuple(counts.items())


def usage_from_responses_object(response: Any) -> Usage | None:
    """The usage of a Responses API ``response`` object (its tool calls and tier included),
    if it carries one."""
    return usage_from_responses(
        wire_field(response, "usage"),
        wire_field(response, "service_tier"),
        tool_calls_from_output(wire_field(response, "output")),
    )


def usage_from_embeddings(response: Any) -> Usage | None:
    """An embeddings response's usage: ``usage.prompt_tokens``, all input."""
    usage = wire_field(response, "usage")
    if usage is None:
        return None
    return Usage(input_tokens=_tokens(usage, "prompt_tokens"))

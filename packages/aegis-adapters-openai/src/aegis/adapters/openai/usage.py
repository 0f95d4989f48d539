"""Usage from OpenAI responses, onto :class:`aegis.core.Usage`.

Each function takes the ``usage`` object (or the whole response) either as parsed JSON or as the
SDK's model: fields are read by key from mappings and by attribute otherwise, so the SDK path
and the proxy share one mapping. Every detail field is optional and may be null. Providers that
report a cached or reasoning count above its total are clamped to the total rather than trusted.
"""

from __future__ import annotations

from typing import Any

from aegis.core import Usage, wire_field

__all__ = [
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


def _usage(total_in: int, cached: int, total_out: int, reasoning: int) -> Usage:
    return Usage(
        input_tokens=total_in,
        cached_input_tokens=min(cached, total_in),
        output_tokens=total_out,
        reasoning_tokens=min(reasoning, total_out),
    )


def usage_from_chat(usage: Any) -> Usage | None:
    """A chat completion's (or a chunk's) ``usage``: ``prompt_tokens`` (with
    ``prompt_tokens_details.cached_tokens``) and ``completion_tokens`` (with
    ``completion_tokens_details.reasoning_tokens``)."""
    if usage is None:
        return None
    return _usage(
        _tokens(usage, "prompt_tokens"),
        _tokens(wire_field(usage, "prompt_tokens_details"), "cached_tokens"),
        _tokens(usage, "completion_tokens"),
        _tokens(wire_field(usage, "completion_tokens_details"), "reasoning_tokens"),
    )


def usage_from_chat_completion(response: Any) -> Usage | None:
    """The usage of a chat completion response or stream chunk, if it carries one."""
    return usage_from_chat(wire_field(response, "usage"))


def usage_from_responses(usage: Any) -> Usage | None:
    """A Responses API ``usage``: ``input_tokens`` (with ``input_tokens_details.cached_tokens``)
    and ``output_tokens`` (with ``output_tokens_details.reasoning_tokens``)."""
    if usage is None:
        return None
    return _usage(
        _tokens(usage, "input_tokens"),
        _tokens(wire_field(usage, "input_tokens_details"), "cached_tokens"),
        _tokens(usage, "output_tokens"),
        _tokens(wire_field(usage, "output_tokens_details"), "reasoning_tokens"),
    )


def usage_from_responses_object(response: Any) -> Usage | None:
    """The usage of a Responses API ``response`` object, if it carries one."""
    return usage_from_responses(wire_field(response, "usage"))


def usage_from_embeddings(response: Any) -> Usage | None:
    """An embeddings response's usage: ``usage.prompt_tokens``, all input."""
    usage = wire_field(response, "usage")
    if usage is None:
        return None
    return Usage(input_tokens=_tokens(usage, "prompt_tokens"))

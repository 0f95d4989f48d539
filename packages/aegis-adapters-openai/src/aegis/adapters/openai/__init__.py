"""Governed OpenAI calls through the official openai SDK, and the OpenAI wire functions.

Two layers:

* pure functions over the JSON that goes over the wire (no SDK needed), which the proxy runs
  per request: worst-case estimates (:func:`estimate_chat_request` ...), the request rewrite
  that carries the permit's output limit (:func:`rewrite_chat_request` ...), usage extraction
  (:func:`usage_from_chat` ...), stream readers (:class:`ChatStreamReader` ...) and error
  bodies (:func:`error_body`, :func:`error_for` ...);
* governed calls through ``openai.AsyncOpenAI``: :func:`chat_completions_via_gate`,
  :func:`responses_via_gate`, :func:`embeddings_via_gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aegis.adapters.openai.errors import (
    MAX_RETRY_AFTER_S,
    ErrorReply,
    InvalidRequestBody,
    OpenAIErrorInfo,
    error_body,
    error_for,
    parse_error_body,
    retry_after_s,
    should_retry,
)
from aegis.adapters.openai.estimate import (
    AUDIO_BASE64_CHARS_PER_TOKEN,
    IMAGE_TOKENS_UPPER_BOUND,
    LEGACY_DEFAULT_MAX_TOKENS,
    LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND,
    MAX_CHOICES,
    SCHEMA_OVERHEAD_TOKENS,
    RequestEstimate,
    estimate_chat_request,
    estimate_completions_request,
    estimate_embeddings_request,
    estimate_responses_request,
)
from aegis.adapters.openai.meter import (
    RESPONSES_TERMINAL_EVENTS,
    OutputMeter,
    count_chat_completion,
    count_completion,
    count_responses_object,
    observe_chat_chunk,
    observe_completion_chunk,
    observe_responses_event,
)
from aegis.adapters.openai.readers import (
    DONE_EVENT,
    ChatStreamReader,
    EventKind,
    ResponsesStreamReader,
    StreamEvent,
)
from aegis.adapters.openai.rewrite import (
    ChatLimitField,
    RequestRewrite,
    rewrite_chat_request,
    rewrite_responses_request,
)
from aegis.adapters.openai.terms import SEARCH_CALLS_RESERVED, billing_terms
from aegis.adapters.openai.usage import (
    service_tier_from_wire,
    tool_calls_from_output,
    usage_from_chat,
    usage_from_chat_completion,
    usage_from_embeddings,
    usage_from_responses,
    usage_from_responses_object,
)
from aegis.core import SseEvent, SseParser

if TYPE_CHECKING:
    from aegis.adapters.openai.governed import (
        chat_completions_via_gate,
        embeddings_via_gate,
        responses_via_gate,
    )
    from aegis.adapters.openai.stream import GovernedStream

# The SDK-backed calls import the openai SDK (about half a second and tens of MB); the proxy
# uses only the wire functions, so the SDK is imported on first use of these names.
_SDK_BACKED = {
    "chat_completions_via_gate": "governed",
    "embeddings_via_gate": "governed",
    "responses_via_gate": "governed",
    "GovernedStream": "stream",
}


def __getattr__(name: str) -> Any:
    module = _SDK_BACKED.get(name)
    if module is not None:
        from importlib import import_module

        return getattr(import_module(f"aegis.adapters.openai.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUDIO_BASE64_CHARS_PER_TOKEN",
    "DONE_EVENT",
    "IMAGE_TOKENS_UPPER_BOUND",
    "LEGACY_DEFAULT_MAX_TOKENS",
    "LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND",
    "MAX_CHOICES",
    "MAX_RETRY_AFTER_S",
    "RESPONSES_TERMINAL_EVENTS",
    "SCHEMA_OVERHEAD_TOKENS",
    "SEARCH_CALLS_RESERVED",
    "ChatLimitField",
    "ChatStreamReader",
    "ErrorReply",
    "EventKind",
    "GovernedStream",
    "InvalidRequestBody",
    "OpenAIErrorInfo",
    "OutputMeter",
    "RequestEstimate",
    "RequestRewrite",
    "ResponsesStreamReader",
    "SseEvent",
    "SseParser",
    "StreamEvent",
    "billing_terms",
    "chat_completions_via_gate",
    "count_chat_completion",
    "count_completion",
    "count_responses_object",
    "embeddings_via_gate",
    "error_body",
    "error_for",
    "estimate_chat_request",
    "estimate_completions_request",
    "estimate_embeddings_request",
    "estimate_responses_request",
    "observe_chat_chunk",
    "observe_completion_chunk",
    "observe_responses_event",
    "parse_error_body",
    "responses_via_gate",
    "retry_after_s",
    "rewrite_chat_request",
    "rewrite_responses_request",
    "service_tier_from_wire",
    "should_retry",
    "tool_calls_from_output",
    "usage_from_chat",
    "usage_from_chat_completion",
    "usage_from_embeddings",
    "usage_from_responses",
    "usage_from_responses_object",
]

"""Governed Claude calls through the official anthropic SDK, and the Anthropic wire functions.

Two layers:

* pure functions over the Messages API's JSON (no SDK needed), which the proxy runs per
  request: worst-case estimates (:func:`estimate_messages_request`,
  :func:`estimate_count_tokens_request`), the rewrite that carries the permit's output limit
  (:func:`rewrite_messages_request`), usage (:func:`usage_from_message`,
  :func:`usage_from_wire`), the stream meter and reader (:class:`StreamMeter`,
  :class:`MessagesStreamReader`), Anthropic's error shape (:func:`error_body`,
  :func:`parse_error_body`, :func:`error_for`), and the OpenAI chat-completions translation
  (:func:`chat_request_to_anthropic`, :func:`anthropic_message_to_chat`,
  :class:`ChatStreamTranslator`, :func:`openai_error_from_anthropic`);
* governed calls through ``anthropic.AsyncAnthropic``: :func:`messages_via_gate`,
  :func:`messages_stream_via_gate`, :func:`count_tokens_via_gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chat_request import AnthropicChatRequest, chat_request_to_anthropic
from .chat_response import (
    anthropic_message_to_chat,
    openai_error_from_anthropic,
    stop_reason_to_openai,
)
from .chat_stream import ChatStreamTranslator
from .errors import (
    ERROR_STATUS,
    MAX_MESSAGE_CHARS,
    NEAR_RESET_S,
    AnthropicAdapterError,
    AnthropicErrorInfo,
    InvalidRequestBody,
    TranslationError,
    WireError,
    WireErrorResponse,
    error_body,
    error_for,
    error_type_for_status,
    parse_error_body,
)
from .estimate import (
    BUILTIN_TOOL_TOKENS_UPPER_BOUND,
    IMAGE_TOKENS_UPPER_BOUND,
    MAX_COUNT,
    MIN_THINKING_BUDGET_TOKENS,
    TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND,
    CountTokensEstimate,
    MessagesEstimate,
    estimate_count_tokens_request,
    estimate_messages_request,
)
from .rewrite import MessagesRewrite, rewrite_messages_request
from .stream import EventKind, MessagesStreamReader, StreamEvent, StreamMeter
from .terms import WEB_SEARCHES_RESERVED, billing_terms
from .usage import AnthropicUsage, usage_from_message, usage_from_wire

if TYPE_CHECKING:
    from .governed import (
        PROVIDER,
        GovernedMessageStream,
        GovernedResponse,
        count_tokens_via_gate,
        messages_stream_via_gate,
        messages_via_gate,
    )

# The SDK-backed calls import the anthropic SDK (tens of MB); the proxy uses only the wire
# functions, so the SDK is imported on first use of these names.
_SDK_BACKED = frozenset(
    {
        "PROVIDER",
        "GovernedMessageStream",
        "GovernedResponse",
        "anthropic_message_to_chat",
        "billing_terms",
        "chat_request_to_anthropic",
        "count_tokens_via_gate",
        "messages_stream_via_gate",
        "messages_via_gate",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SDK_BACKED:
        from . import governed

        return getattr(governed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILTIN_TOOL_TOKENS_UPPER_BOUND",
    "ERROR_STATUS",
    "IMAGE_TOKENS_UPPER_BOUND",
    "MAX_COUNT",
    "MAX_MESSAGE_CHARS",
    "MIN_THINKING_BUDGET_TOKENS",
    "NEAR_RESET_S",
    "PROVIDER",
    "TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND",
    "WEB_SEARCHES_RESERVED",
    "AnthropicAdapterError",
    "AnthropicChatRequest",
    "AnthropicErrorInfo",
    "AnthropicUsage",
    "ChatStreamTranslator",
    "CountTokensEstimate",
    "EventKind",
    "GovernedMessageStream",
    "GovernedResponse",
    "InvalidRequestBody",
    "MessagesEstimate",
    "MessagesRewrite",
    "MessagesStreamReader",
    "StreamEvent",
    "StreamMeter",
    "TranslationError",
    "WireError",
    "WireErrorResponse",
    "anthropic_message_to_chat",
    "billing_terms",
    "chat_request_to_anthropic",
    "count_tokens_via_gate",
    "error_body",
    "error_for",
    "error_type_for_status",
    "estimate_count_tokens_request",
    "estimate_messages_request",
    "messages_stream_via_gate",
    "messages_via_gate",
    "openai_error_from_anthropic",
    "parse_error_body",
    "rewrite_messages_request",
    "stop_reason_to_openai",
    "usage_from_message",
    "usage_from_wire",
]

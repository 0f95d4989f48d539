"""Governed Gemini calls through google-genai, and OpenAI <-> Gemini translation.

Pure modules over Gemini's REST JSON (no SDK needed, for the proxy's hot path): worst-case
estimates (:func:`estimate_generate_content`, :func:`estimate_embed_content`), output limits
(:func:`output_limits`, :func:`with_output_limits`), usage (:func:`usage_from_response`,
:class:`StreamUsage`), the stream parser (:class:`SseParser`), error mapping
(:func:`parse_error_body`, :func:`openai_error_body`), and the OpenAI chat-completions
translation (:func:`chat_request_to_gemini`, :func:`gemini_response_to_chat`,
:class:`ChatStreamTranslator`), and of embeddings (:func:`embeddings_request_to_gemini`,
:func:`gemini_embeddings_to_openai`). SDK-backed: :func:`generate_content_via_gate`,
:func:`generate_content_stream_via_gate`, :func:`embed_content_via_gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .chat_request import GeminiChatRequest, chat_request_to_gemini
from .chat_response import (
    finish_reason_to_openai,
    gemini_response_to_chat,
    new_completion_id,
    openai_usage,
)
from .chat_stream import SSE_DONE, ChatStreamTranslator, sse_event, stream_error_event
from .embeddings import (
    GeminiEmbeddingsRequest,
    embeddings_request_to_gemini,
    gemini_embeddings_to_openai,
)
from .errors import (
    GeminiAdapterError,
    ResponseTranslationError,
    TranslationError,
    UnboundedRequest,
    WireError,
)
from .estimate import (
    MEDIA_PART_MIN_TOKENS,
    GenerateEstimate,
    OutputLimits,
    estimate_embed_content,
    estimate_generate_content,
    is_thinking_model,
    output_limits,
    with_output_limits,
)
from .responses import (
    ResponsesStreamFromChat,
    chat_completion_to_response,
    responses_request_to_chat,
    responses_sse_event,
)
from .sse import SseParser
from .terms import SEARCH_QUERIES_RESERVED, billing_terms
from .upstream_errors import GOOGLE_STATUS, GeminiError, openai_error_body, parse_error_body
from .usage import (
    StreamUsage,
    grounding_calls,
    service_tier_from_header,
    usage_from_metadata,
    usage_from_response,
)

if TYPE_CHECKING:
    from .governed import (
        PROVIDER,
        GovernedResponse,
        GovernedStream,
        embed_content_via_gate,
        generate_content_stream_via_gate,
        generate_content_via_gate,
    )

# The SDK-backed calls import google-genai (about a second and tens of MB); the proxy uses only
# the pure wire functions, so the SDK is imported on first use of these names.
_SDK_BACKED = frozenset(
    {
        "PROVIDER",
        "GovernedResponse",
        "GovernedStream",
        "embed_content_via_gate",
        "generate_content_stream_via_gate",
        "generate_content_via_gate",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SDK_BACKED:
        from . import governed

        return getattr(governed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GOOGLE_STATUS",
    "MEDIA_PART_MIN_TOKENS",
    "PROVIDER",
    "SEARCH_QUERIES_RESERVED",
    "SSE_DONE",
    "ChatStreamTranslator",
    "GeminiAdapterError",
    "GeminiChatRequest",
    "GeminiEmbeddingsRequest",
    "GeminiError",
    "GenerateEstimate",
    "GovernedResponse",
    "GovernedStream",
    "OutputLimits",
    "ResponseTranslationError",
    "ResponsesStreamFromChat",
    "SseParser",
    "StreamUsage",
    "TranslationError",
    "UnboundedRequest",
    "WireError",
    "billing_terms",
    "chat_completion_to_response",
    "chat_request_to_gemini",
    "embed_content_via_gate",
    "embeddings_request_to_gemini",
    "estimate_embed_content",
    "estimate_generate_content",
    "finish_reason_to_openai",
    "gemini_embeddings_to_openai",
    "gemini_response_to_chat",
    "generate_content_stream_via_gate",
    "generate_content_via_gate",
    "grounding_calls",
    "is_thinking_model",
    "new_completion_id",
    "openai_error_body",
    "openai_usage",
    "output_limits",
    "parse_error_body",
    "responses_request_to_chat",
    "responses_sse_event",
    "service_tier_from_header",
    "sse_event",
    "stream_error_event",
    "usage_from_metadata",
    "usage_from_response",
    "with_output_limits",
]

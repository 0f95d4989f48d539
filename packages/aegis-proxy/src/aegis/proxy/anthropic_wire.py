"""Anthropic upstreams: native Messages calls from an Anthropic client (bytes passed through,
usage read on the way), ``count_tokens`` (free, receipted), and OpenAI chat calls translated
both ways (which lets a tenant fall back from OpenAI to Claude: the client sees OpenAI's wire
format only).

A native stream passes Anthropic's events through as they arrive (``message_start``,
``content_block_*``, ``ping``, ``message_delta`` with cumulative usage, ``message_stop``); the
adapter's :class:`~aegis.adapters.anthropic.MessagesStreamReader` meters each one. A stream
that runs past the output limit the permit granted is ended cleanly: a ``message_delta`` with
``stop_reason: "max_tokens"`` and a ``message_stop``. An ``error`` event from the upstream is
the last thing the client gets, once: the attempt is settled as broken first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aegis.adapters.anthropic import (
    AnthropicChatRequest,
    ChatStreamTranslator,
    InvalidRequestBody,
    MessagesEstimate,
    MessagesStreamReader,
    StreamEvent,
    anthropic_message_to_chat,
    openai_error_from_anthropic,
    parse_error_body,
    rewrite_messages_request,
    usage_from_message,
)
from aegis.core import (
    SSE_DONE,
    STANDARD_TERMS,
    BillingTerms,
    Permit,
    SseEvent,
    Usage,
    UsageSource,
    chat_sse_event,
)
from aegis.proxy import fast_json
from aegis.proxy.apis import ANTHROPIC, OPENAI
from aegis.proxy.exchange import Answer, Exchange
from aegis.proxy.openai_wire import json_object, openai_failure, passthrough_error
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import CallScope

__all__ = [
    "MESSAGES_PATH",
    "admit",
    "client_headers",
    "count_tokens_exchange",
    "native_exchange",
    "translated_exchange",
]

MESSAGES_PATH: Final = "/v1/messages"
COUNT_TOKENS_PATH: Final = "/v1/messages/count_tokens"
_CLIENT_HEADERS: Final = ("anthropic-version", "anthropic-beta")


def client_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers of an Anthropic client that change what the upstream does
    (``anthropic-version``, ``anthropic-beta``), to send on."""
    return {name: headers[name] for name in _CLIENT_HEADERS if headers.get(name)}


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


class _Metered:
    """What both stream observers share: the reader that meters every event, and the
    upstream's ``error`` event, held back to end the client's stream."""

    __slots__ = ("_error", "_reader")

    def __init__(self, max_output_tokens: int) -> None:
        self._reader = MessagesStreamReader(
            max_output_tokens=max_output_tokens, loads=fast_json.loads
        )
        self._error: bytes | None = None

    def _classify(self, event: SseEvent) -> StreamEvent:
        classified = self._reader.classify(event)
        if classified.kind == "other" and classified.data is None and event.data is not None:
            raise ValueError("a stream event whose data is not JSON")
        return classified

    @property
    def complete(self) -> str | None:
        if self._error is not None:
            error = self._reader.meter.error
            return f"with an error event ({error.type if error else 'unknown'})"
        return None if self._reader.meter.done else "before message_stop"

    def usage(self, input_bound: int, completed: bool) -> tuple[Usage, UsageSource]:
        meter = self._reader.meter
        reported = meter.usage()
        if completed and reported is not None and not meter.exceeded:
            return reported, "reported"
        return meter.counted_usage(input_bound), "counted"


class _NativeStream(_Metered):
    """Passes a Messages stream through and meters it."""

    __slots__ = ("_limit",)

    def __init__(self, max_output_tokens: int) -> None:
        super().__init__(max_output_tokens)
        self._limit = max_output_tokens

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        classified = self._classify(event)
        if classified.kind == "over_limit":
            # The upstream ignores the limit we reserved for: end the message here.
            delta = {"stop_reason": "max_tokens", "stop_sequence": None}
            out += _sse(
                "message_delta",
                {"type": "message_delta", "delta": delta, "usage": {"output_tokens": self._limit}},
            )
            out += _sse("message_stop", {"type": "message_stop"})
            return False
        if classified.kind == "error":
            # Sent last, once the attempt is settled (see :meth:`tail`).
            self._error = classified.raw
            return True
        if self._error is None:
            out += classified.raw
        return True

    def tail(self, error: str | None) -> bytes:
        return self._error or b""


def _limited_body(
    body: Mapping[str, Any], raw: bytes | None, estimate: MessagesEstimate, permit: Permit
) -> bytes:
    """The body carrying the output limit the permit was granted (the client's bytes, with
    only ``max_tokens`` and a thinking budget replaced when they must be lowered)."""
    limit = permit.max_output_tokens
    try:
        rewrite = rewrite_messages_request(body, estimate, max_output_tokens=limit)
    except InvalidRequestBody:
        # The granted limit leaves no room for the smallest thinking budget. The permit is
        # held already, so the call goes out with the limit, and Anthropic refuses it (400):
        # the attempt settles as refused, nothing charged.
        limited = {**body, "max_tokens": limit}
        return json.dumps(limited, separators=(",", ":"), ensure_ascii=False).encode()
    return rewrite.to_bytes(raw)


def native_exchange(
    body: Mapping[str, Any],
    raw: bytes | None,
    estimate: MessagesEstimate,
    permit: Permit,
    headers: Mapping[str, str],
) -> Exchange:
    """A native Messages call from an Anthropic client."""

    def read_answer(answer: bytes) -> Answer:
        return Answer(answer, usage_from_message(json_object(answer)))

    limit = permit.max_output_tokens
    return Exchange(
        path=MESSAGES_PATH,
        payload=_limited_body(body, raw, estimate, permit),
        client=ANTHROPIC,
        read_answer=read_answer,
        client_error=passthrough_error(permit.provider),
        observer=(lambda: _NativeStream(limit)) if estimate.stream else None,
        headers=client_headers(headers),
    )


def count_tokens_exchange(raw: bytes, permit: Permit, headers: Mapping[str, str]) -> Exchange:
    """A ``count_tokens`` call, forwarded as sent: Anthropic does not bill it, so its
    receipt charges nothing."""

    def read_answer(answer: bytes) -> Answer:
        json_object(answer)
        return Answer(answer, Usage())

    return Exchange(
        path=COUNT_TOKENS_PATH,
        payload=raw,
        client=ANTHROPIC,
        read_answer=read_answer,
        client_error=passthrough_error(permit.provider),
        headers=client_headers(headers),
    )


class _TranslatedStream(_Metered):
    """Meters a Messages stream and translates it to OpenAI chat chunks."""

    __slots__ = ("_translator",)

    def __init__(self, translator: ChatStreamTranslator, max_output_tokens: int) -> None:
        super().__init__(max_output_tokens)
        self._translator = translator

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        classified = self._classify(event)
        if classified.kind == "over_limit":
            for chunk in self._translator.stop("length"):
                out += chat_sse_event(chunk)
            return False
        if classified.kind == "error":
            info = classified.error or parse_error_body(502, classified.data)
            self._error = chat_sse_event(openai_error_from_anthropic(info)[1])
            return True
        if isinstance(classified.data, dict) and self._error is None:
            for chunk in self._translator.feed(classified.data):
                out += chat_sse_event(chunk)
        return True

    def tail(self, error: str | None) -> bytes:
        if error is not None:
            return self._error or b""
        meter = self._reader.meter
        chunks = self._translator.finish(meter.usage() or meter.counted_usage(0))
        return b"".join(chat_sse_event(c) for c in chunks) + SSE_DONE


def _to_openai(status: int, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    return openai_error_from_anthropic(parse_error_body(status, body, headers))


async def admit(
    scope: CallScope,
    attempt: Attempt,
    request_id: str,
    estimate: MessagesEstimate,
    *,
    capability: str | None = None,
    terms: BillingTerms = STANDARD_TERMS,
) -> Permit:
    """Reserve one attempt at a Messages body's worst case: the input within the model's
    context window (at the dearest cache-write price when it may write the cache), and its
    output (``max_tokens``, with interleaved thinking's budget on top)."""
    price = scope.gate.pricing.get(estimate.model)
    return await scope.admit(
        attempt,
        request_id,
        input_tokens=estimate.reserved_input_tokens(price),
        max_output_tokens=estimate.output_tokens,
        capability=capability,
        terms=terms,
    )


def translated_exchange(
    translated: AnthropicChatRequest, estimate: MessagesEstimate, permit: Permit
) -> Exchange:
    """An OpenAI chat call served by Claude."""
    body = {**translated.body, "model": permit.model}

    def read_answer(raw: bytes) -> Answer:
        data = json_object(raw)
        completion = anthropic_message_to_chat(data, model=translated.model)
        out = json.dumps(completion, separators=(",", ":"), ensure_ascii=False).encode()
        return Answer(out, usage_from_message(data), passthrough=False)

    limit = permit.max_output_tokens

    def observer() -> _TranslatedStream:
        translator = ChatStreamTranslator(
            model=translated.model, include_usage=translated.include_usage
        )
        return _TranslatedStream(translator, limit)

    return Exchange(
        path=MESSAGES_PATH,
        payload=_limited_body(body, None, estimate, permit),
        client=OPENAI,
        read_answer=read_answer,
        client_error=openai_failure(permit.provider, _to_openai),
        observer=observer if translated.stream else None,
    )

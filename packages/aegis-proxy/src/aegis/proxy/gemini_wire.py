"""Gemini upstreams: native calls from a Gemini client (bytes passed through, usage read on
the way), and OpenAI chat calls translated both ways (which lets a tenant fall back from
OpenAI to Gemini: the client sees OpenAI's wire format only)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aegis.adapters.gemini import (
    SSE_DONE,
    ChatStreamTranslator,
    GeminiChatRequest,
    GeminiEmbeddingsRequest,
    GenerateEstimate,
    ResponsesStreamFromChat,
    ResponseTranslationError,
    StreamUsage,
    UnboundedRequest,
    chat_completion_to_response,
    estimate_generate_content,
    gemini_embeddings_to_openai,
    gemini_response_to_chat,
    openai_error_body,
    output_limits,
    parse_error_body,
    responses_sse_event,
    sse_event,
    usage_from_response,
    with_output_limits,
)
from aegis.core import Gate, Permit, Policy, SseEvent, Usage, UsageSource
from aegis.proxy import fast_json
from aegis.proxy.apis import GOOGLE, OPENAI
from aegis.proxy.errors import BadRequest
from aegis.proxy.exchange import Answer, Exchange
from aegis.proxy.openai_wire import json_object, openai_failure, passthrough_error

__all__ = [
    "embed_exchange",
    "estimate_for",
    "gemini_path",
    "native_exchange",
    "translated_embeddings_exchange",
    "translated_exchange",
    "translated_responses_exchange",
]


def estimate_for(
    gate: Gate, body: Mapping[str, Any], model: str, policy: Policy | None = None
) -> GenerateEstimate:
    """The worst case of a generate body for ``model``, from the model's catalogue limits and
    the policy's default output bound (which the limited body then carries); a count that
    cannot be read as Gemini reads it is a 400 naming it."""
    price = gate.pricing.get(model)
    model_max = price.max_output_tokens if price else 0
    default = None if policy is None else policy.default_output_tokens(model)
    if default is not None:
        model_max = default if model_max <= 0 else min(default, model_max)
    try:
        return estimate_generate_content(
            body,
            model=model,
            model_max_output_tokens=model_max,
            context_window=price.input_limit if price else 0,
        )
    except UnboundedRequest as exc:
        raise BadRequest(exc.message, param=exc.param) from None


def gemini_path(model: str, action: str, version: str = "v1beta") -> str:
    """The REST path of a Gemini model action (``alt=sse`` for streams)."""
    suffix = "?alt=sse" if action == "streamGenerateContent" else ""
    return f"/{version}/models/{model}:{action}{suffix}"


def _limited_body(body: Mapping[str, Any], estimate: GenerateEstimate, permit: Permit) -> bytes:
    """The body carrying the output limits the permit was granted (always explicit, so the
    upstream enforces the worst case that was reserved)."""
    limited = with_output_limits(dict(body), output_limits(estimate, permit.max_output_tokens))
    return json.dumps(limited, separators=(",", ":"), ensure_ascii=False).encode()


class _StreamReader:
    """Reads a Gemini stream's usage; passes events through (as SSE, or as the elements of
    one JSON array for a client that did not ask for ``alt=sse``), or translates them to
    OpenAI chunks when a translator is given."""

    __slots__ = ("_array", "_sent", "_translator", "_usage")

    def __init__(
        self, translator: ChatStreamTranslator | None, permit: Permit, *, array: bool = False
    ) -> None:
        self._translator = translator
        self._usage = StreamUsage() if translator is None else translator.usage
        # The answer names its tier in a header this reader does not see; the tier asked for
        # is charged (a downgraded priority call is over-charged, never under).
        self._usage.service_tier = permit.terms.service_tier
        self._array = array
        self._sent = 0

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        if event.data is None:
            return True
        parsed = fast_json.loads(event.data)
        if self._translator is None:
            if not isinstance(parsed, dict):
                raise ValueError("stream event is not a JSON object")
            self._usage.observe(parsed)
            if self._array:
                # Google's layout of a stream without alt=sse: "[" obj ",\r\n" obj ... "]".
                out += (b",\r\n" if self._sent else b"[") + event.data
            else:
                out += event.raw
            self._sent += 1
        else:
            for piece in self._translator.feed(parsed):
                out += sse_event(piece)
        return True

    @property
    def complete(self) -> str | None:
        if self._translator is None or self._translator.is_finished:
            return None
        return "before every choice finished"

    def usage(self, input_bound: int, completed: bool) -> tuple[Usage, UsageSource]:
        # Gemini reports usage cumulatively in every chunk: only a finished stream's is final.
        reported = self._usage.usage()
        if completed and reported is not None:
            return reported, "reported"
        return self._usage.upper_bound(input_bound), "counted"

    def tail(self, error: str | None) -> bytes:
        if self._array:
            # The array is always closed; a failure is its last element, as Google sends it.
            head = b",\r\n" if self._sent else b"["
            if error is None:
                return b"]" if self._sent else b"[]"
            body = GOOGLE.error_body(502, error, type="", code=None, param=None)
            return head + body + b"]"
        if error is not None or self._translator is None:
            return b""
        return b"".join(sse_event(c) for c in self._translator.finish()) + SSE_DONE


def _answer_usage(data: Mapping[str, Any], permit: Permit) -> tuple[Usage, UsageSource]:
    """An answer's reported usage; without ``usageMetadata``, the input bound and the
    counted output (as a stream that ended early is billed), never the whole reservation."""
    tier = permit.terms.service_tier
    usage = usage_from_response(data, tier)
    if usage is not None:
        return usage, "reported"
    meter = StreamUsage()
    meter.service_tier = tier
    meter.observe(data)
    return meter.upper_bound(permit.input_tokens), "counted"


def native_exchange(
    call_body: Mapping[str, Any],
    estimate: GenerateEstimate,
    permit: Permit,
    *,
    version: str,
    action: str,
    sse: bool = True,
) -> Exchange:
    """A Gemini-native generate call from a Gemini client (``sse=False``: a stream the client
    reads as one JSON array; upstream it is SSE all the same, so usage is read as it comes)."""

    def read_answer(raw: bytes) -> Answer:
        usage, source = _answer_usage(json_object(raw), permit)
        return Answer(raw, usage, source)

    return Exchange(
        path=gemini_path(permit.model, action, version),
        payload=_limited_body(call_body, estimate, permit),
        client=GOOGLE,
        read_answer=read_answer,
        client_error=passthrough_error(permit.provider),
        observer=(lambda: _StreamReader(None, permit, array=not sse))
        if action == "streamGenerateContent"
        else None,
        stream_content_type="text/event-stream" if sse else "application/json",
    )


def embed_exchange(raw: bytes, permit: Permit, *, version: str, action: str) -> Exchange:
    """A Gemini embedding call, forwarded as sent."""

    def read_answer(body: bytes) -> Answer:
        # The Gemini API answers an embedding call with usageMetadata.promptTokenCount (the
        # google-genai SDK reads it as EmbedContentResponse.usage_metadata): that count is the
        # bill. An answer without it is charged the input's byte bound, which always holds.
        usage = usage_from_response(json_object(body))
        if usage is None:
            return Answer(body, Usage(input_tokens=permit.input_tokens), "counted")
        return Answer(body, usage)

    return Exchange(
        path=gemini_path(permit.model, action, version),
        payload=raw,
        client=GOOGLE,
        read_answer=read_answer,
        client_error=passthrough_error(permit.provider),
    )


class _ResponsesStreamReader:
    """A Gemini stream read as chat chunks (the chat translation), sent to the client as a
    Responses event stream."""

    __slots__ = ("_chat", "_responses")

    def __init__(self, chat: ChatStreamTranslator, responses: ResponsesStreamFromChat) -> None:
        self._chat = chat
        self._responses = responses

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        if event.data is None:
            return True
        for chunk in self._chat.feed(fast_json.loads(event.data)):
            for piece in self._responses.feed(chunk):
                out += responses_sse_event(piece)
        return True

    @property
    def complete(self) -> str | None:
        return None if self._chat.is_finished else "before the response finished"

    def usage(self, input_bound: int, completed: bool) -> tuple[Usage, UsageSource]:
        reported = self._chat.usage.reported
        if completed and reported is not None:
            return reported, "reported"
        return self._chat.usage.upper_bound(input_bound), "counted"

    def tail(self, error: str | None) -> bytes:
        if error is not None:
            return b""  # the pump sends the error event the SDK raises
        out = bytearray()
        for chunk in self._chat.finish():
            for piece in self._responses.feed(chunk):
                out += responses_sse_event(piece)
        for piece in self._responses.finish():
            out += responses_sse_event(piece)
        return bytes(out)


def translated_responses_exchange(
    translated: GeminiChatRequest,
    estimate: GenerateEstimate,
    permit: Permit,
    request: Mapping[str, Any],
) -> Exchange:
    """An OpenAI Responses call served by Gemini, through the chat translation both ways."""

    def read_answer(raw: bytes) -> Answer:
        data = json_object(raw)
        try:
            completion = gemini_response_to_chat(
                data,
                model=translated.model,
                n=1,
                parallel_tool_calls=translated.parallel_tool_calls,
            )
        except ResponseTranslationError as exc:
            raise ValueError(exc.message) from exc
        response = chat_completion_to_response(completion, request)
        body = json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode()
        usage, source = _answer_usage(data, permit)
        return Answer(body, usage, source, passthrough=False)

    def observer() -> _ResponsesStreamReader:
        chat = ChatStreamTranslator(
            model=translated.model,
            include_usage=True,
            parallel_tool_calls=translated.parallel_tool_calls,
        )
        chat.usage.service_tier = permit.terms.service_tier  # as the chat stream reader does
        return _ResponsesStreamReader(chat, ResponsesStreamFromChat(request))

    stream = translated.stream
    action = "streamGenerateContent" if stream else "generateContent"
    return Exchange(
        path=gemini_path(permit.model, action),
        payload=_limited_body(translated.body, estimate, permit),
        client=OPENAI,
        read_answer=read_answer,
        client_error=openai_failure(permit.provider, _to_openai),
        observer=observer if stream else None,
    )


def translated_embeddings_exchange(translated: GeminiEmbeddingsRequest, permit: Permit) -> Exchange:
    """An OpenAI embeddings call served by Gemini's ``batchEmbedContents``."""

    def read_answer(raw: bytes) -> Answer:
        data = json_object(raw)
        try:
            out = gemini_embeddings_to_openai(
                data, model=translated.model, encoding_format=translated.encoding_format
            )
        except ResponseTranslationError as exc:
            raise ValueError(exc.message) from exc
        # As the native embedding call: the reported prompt count, else the input's bound.
        usage = usage_from_response(data)
        source: UsageSource = "reported"
        if usage is None:
            usage, source = Usage(input_tokens=permit.input_tokens), "counted"
            out["usage"] = {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens}
        body = json.dumps(out, separators=(",", ":")).encode()
        return Answer(body, usage, source, passthrough=False)

    return Exchange(
        path=gemini_path(permit.model, "batchEmbedContents"),
        payload=json.dumps(translated.body, separators=(",", ":"), ensure_ascii=False).encode(),
        client=OPENAI,
        read_answer=read_answer,
        client_error=openai_failure(permit.provider, _to_openai),
    )


def _to_openai(status: int, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    return openai_error_body(parse_error_body(status, body))


def translated_exchange(
    translated: GeminiChatRequest, estimate: GenerateEstimate, permit: Permit
) -> Exchange:
    """An OpenAI chat call served by Gemini."""
    stream = translated.stream

    def read_answer(raw: bytes) -> Answer:
        data = json_object(raw)
        try:
            completion = gemini_response_to_chat(
                data,
                model=translated.model,
                n=translated.n,
                parallel_tool_calls=translated.parallel_tool_calls,
            )
        except ResponseTranslationError as exc:
            raise ValueError(exc.message) from exc
        body = json.dumps(completion, separators=(",", ":"), ensure_ascii=False).encode()
        usage, source = _answer_usage(data, permit)
        return Answer(body, usage, source, passthrough=False)

    def observer() -> _StreamReader:
        return _StreamReader(
            ChatStreamTranslator(
                model=translated.model,
                include_usage=translated.include_usage,
                parallel_tool_calls=translated.parallel_tool_calls,
                n=translated.n,
            ),
            permit,
        )

    action = "streamGenerateContent" if stream else "generateContent"
    return Exchange(
        path=gemini_path(permit.model, action),
        payload=_limited_body(translated.body, estimate, permit),
        client=OPENAI,
        read_answer=read_answer,
        client_error=openai_failure(permit.provider, _to_openai),
        observer=observer if stream else None,
    )

"""OpenAI's API on the proxy: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/completions``
(legacy), ``/v1/embeddings``, ``/v1/models`` (the free calls are in
:mod:`aegis.proxy.free_api`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from aegis.adapters.anthropic import (
    InvalidRequestBody as AnthropicInvalidBody,
    TranslationError as AnthropicTranslationError,
    chat_request_to_anthropic,
    estimate_messages_request,
)
from aegis.adapters.gemini import (
    TranslationError,
    billing_terms as gemini_billing_terms,
    chat_request_to_gemini,
    embeddings_request_to_gemini,
    estimate_embed_content,
    responses_request_to_chat,
)
from aegis.adapters.openai import (
    InvalidRequestBody,
    billing_terms,
    count_chat_completion,
    count_completion,
    count_responses_object,
    estimate_chat_request,
    estimate_completions_request,
    estimate_embeddings_request,
    estimate_responses_request,
    observe_chat_chunk,
    observe_completion_chunk,
    observe_responses_event,
    rewrite_chat_request,
    rewrite_responses_request,
    usage_from_chat_completion,
    usage_from_embeddings,
    usage_from_responses_object,
)
from aegis.core import Permit, SseEvent, Usage, UsageSource
from aegis.proxy import fast_json
from aegis.proxy.anthropic_wire import (
    admit as anthropic_admit,
    translated_exchange as anthropic_translated_exchange,
)
from aegis.proxy.calls import IncomingCall, read_call
from aegis.proxy.errors import BadRequest
from aegis.proxy.exchange import Answer, Exchange, StreamObserver
from aegis.proxy.free_api import gemini_model_list
from aegis.proxy.gemini_wire import (
    estimate_for,
    translated_embeddings_exchange,
    translated_exchange,
    translated_responses_exchange,
)
from aegis.proxy.idempotency import StoredResponse
from aegis.proxy.openai_wire import Endpoint, openai_exchange
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import CallScope, serve
from aegis.proxy.state import GATE, IDEMPOTENCY, KEYS, RESPONSE_OWNERS, ROUTER, UPSTREAMS
from aegis.proxy.stored_responses import ResponseOwner, ResponseOwners

__all__ = ["routes"]

_ANTHROPIC_DEFAULT_MAX_TOKENS: Final = 4096
"""``max_tokens`` for a Claude model the price list gives no output limit."""

CHAT: Final = Endpoint(
    path="/chat/completions",
    capability="llm:invoke",
    estimate=estimate_chat_request,
    rewrite=lambda body, limit: rewrite_chat_request(body, max_output_tokens=limit),
    usage_from_response=usage_from_chat_completion,
    observe=observe_chat_chunk,
    count=count_chat_completion,
    ends_with_done=True,
)
RESPONSES: Final = Endpoint(
    path="/responses",
    capability="llm:invoke",
    estimate=estimate_responses_request,
    rewrite=lambda body, limit: rewrite_responses_request(body, max_output_tokens=limit),
    usage_from_response=usage_from_responses_object,
    observe=observe_responses_event,
    count=count_responses_object,
)
COMPLETIONS: Final = Endpoint(
    path="/completions",
    capability="llm:invoke",
    estimate=estimate_completions_request,
    # The legacy API knows max_tokens only (and defaults it to 16, which the estimate keeps).
    rewrite=lambda body, limit: rewrite_chat_request(
        body, max_output_tokens=limit, limit_field="max_tokens"
    ),
    usage_from_response=usage_from_chat_completion,
    observe=observe_completion_chunk,
    count=count_completion,
    ends_with_done=True,
)
EMBEDDINGS: Final = Endpoint(
    path="/embeddings",
    capability="embeddings:create",
    estimate=estimate_embeddings_request,
    rewrite=None,
    usage_from_response=usage_from_embeddings,
)


async def governed(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    """The whole governed path of one OpenAI-format call, fallback included."""
    call = await read_call(request)
    idem_key = request.headers.get("idempotency-key")
    stream = call.body.get("stream") is True
    if idem_key is None or stream:
        return await _governed(request, endpoint, call)
    store = request.app[IDEMPOTENCY]
    stored = await store.begin(call.tenant_id, idem_key, call.raw)
    if stored is not None:
        return web.Response(
            status=stored.status,
            body=stored.body,
            headers={**stored.headers, "x-aegis-idempotent-replay": "true"},
        )
    response: web.StreamResponse | None = None
    try:
        response = await _governed(request, endpoint, call)
    finally:
        stored = None
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            stored = StoredResponse(response.status, response.body, dict(response.headers))
        # Nothing stored (a refusal or a crash): the key stays free for a retry.
        await store.finish(call.tenant_id, idem_key, stored)
    return response


async def _governed(
    request: web.Request, endpoint: Endpoint, call: IncomingCall
) -> web.StreamResponse:
    gate = request.app[GATE]
    stream = call.body.get("stream") is True
    model = call.body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string", param="model")
    if stream and endpoint.observe is None:
        raise BadRequest(f"{endpoint.path} does not stream", param="stream")
    try:
        estimate = endpoint.estimate(call.body)
    except InvalidRequestBody as exc:
        raise BadRequest(exc.message, param=exc.param) from None
    scope = await CallScope.open(gate, call, model, "llm:stream" if stream else endpoint.capability)
    plan = request.app[ROUTER].plan(model, scope.policy, cross_type=endpoint is CHAT)

    async def prepare(attempt: Attempt, request_id: str) -> tuple[Permit, Exchange]:
        if attempt.provider_type == "gemini":
            if endpoint is CHAT:
                return await _prepare_gemini(scope, attempt, request_id)
            if endpoint is EMBEDDINGS:
                return await _prepare_gemini_embeddings(scope, attempt, request_id)
            if endpoint is RESPONSES:
                return await _prepare_gemini_responses(scope, attempt, request_id)
            # Refused before anything is reserved; Gemini would answer a misleading 400.
            raise BadRequest(
                f"/v1{endpoint.path} is served by OpenAI-compatible providers only; "
                f"{attempt.model!r} is a Gemini model: use /v1/chat/completions",
                param="model",
                code="unsupported_model",
            )
        if attempt.provider_type == "anthropic":
            return await _prepare_anthropic(scope, attempt, request_id)
        price = gate.pricing.get(attempt.model)
        model_max = price.max_output_tokens if price is not None else 0
        # A request without an output limit gets the policy's default for the model (the
        # rewrite below sends it), rather than the model's whole maximum.
        default = scope.policy.default_output_tokens(attempt.model)
        if default is not None and model_max > 0:
            default = min(default, model_max)
        permit = await scope.admit(
            attempt,
            request_id,
            input_tokens=estimate.input_tokens,
            max_output_tokens=None
            if endpoint.rewrite is None
            else estimate.output_tokens(model_max if default is None else default),
            terms=billing_terms(call.body),
            input_is_bounded=estimate.input_is_bounded,
        )
        same_model = attempt.model == model
        body = call.body if same_model else {**call.body, "model": attempt.model}
        n = max(estimate.n, 1)
        per_choice = max(1, (permit.max_output_tokens - estimate.extra_output_tokens) // n)
        withhold_usage = False
        if endpoint.rewrite is None:
            payload = call.raw if same_model else _dumps(body)
        else:
            rewrite = endpoint.rewrite(body, per_choice)
            payload = rewrite.to_bytes(call.raw if same_model else None)
            withhold_usage = stream and not rewrite.client_wants_usage
        exchange = openai_exchange(
            endpoint,
            attempt.provider,
            payload,
            stream=stream,
            per_choice_limit=per_choice,
            n=n,
            withhold_usage=withhold_usage,
            input_bound=permit.input_tokens,
        )
        if endpoint is RESPONSES:
            owner = ResponseOwner(call.tenant_id, attempt.provider, attempt.model)
            exchange = _recording(exchange, request.app[RESPONSE_OWNERS], owner)
        return permit, exchange

    upstreams = request.app[UPSTREAMS]
    return await serve(request, scope, upstreams, plan, prepare)


class _RecordingObserver:
    """Notes the id of a streamed response (its ``response.created`` event), then reads the
    stream as the wrapped observer does."""

    __slots__ = ("_inner", "_record")

    def __init__(self, inner: StreamObserver, record: Callable[[Any], None]) -> None:
        self._inner = inner
        self._record: Callable[[Any], None] | None = record

    def feed(self, event: SseEvent, out: bytearray) -> bool:
        if self._record is not None and event.data is not None and event.data != b"[DONE]":
            with suppress(ValueError):
                data = fast_json.loads(event.data)
                if isinstance(data, dict) and data.get("type") == "response.created":
                    self._record(data.get("response"))
                    self._record = None
        return self._inner.feed(event, out)

    @property
    def complete(self) -> str | None:
        return self._inner.complete

    def usage(self, input_bound: int, completed: bool) -> tuple[Usage, UsageSource]:
        return self._inner.usage(input_bound, completed)

    def tail(self, error: str | None) -> bytes:
        return self._inner.tail(error)


def _recording(exchange: Exchange, owners: ResponseOwners, owner: ResponseOwner) -> Exchange:
    """The exchange, noting who made each response it relays (``GET /v1/responses/{id}``
    serves only the tenant that made it)."""

    def record(response: Any) -> None:
        response_id = response.get("id") if isinstance(response, dict) else None
        if isinstance(response_id, str) and response_id:
            owners.record(response_id, owner)

    def read_answer(raw: bytes) -> Answer:
        answer = exchange.read_answer(raw)
        record(fast_json.loads(raw))
        return answer

    inner = exchange.observer
    observer = None if inner is None else (lambda: _RecordingObserver(inner(), record))
    return replace(exchange, read_answer=read_answer, observer=observer)


async def _prepare_gemini(
    scope: CallScope, attempt: Attempt, request_id: str
) -> tuple[Permit, Exchange]:
    """An OpenAI chat attempt served by Gemini, translated both ways."""
    try:
        translated = chat_request_to_gemini(scope.call.body)
    except TranslationError as exc:
        raise BadRequest(exc.message, param=exc.param, code=exc.code) from None
    estimate = estimate_for(scope.gate, translated.body, attempt.model, scope.policy)
    permit = await scope.admit(
        attempt,
        request_id,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.output_tokens,
        capability="llm:stream" if translated.stream else "llm:invoke",
        terms=gemini_billing_terms(translated.body),
        input_is_bounded=estimate.input_is_bounded,
    )
    return permit, translated_exchange(translated, estimate, permit)


async def _prepare_gemini_responses(
    scope: CallScope, attempt: Attempt, request_id: str
) -> tuple[Permit, Exchange]:
    """An OpenAI Responses attempt served by Gemini: Responses → chat → Gemini, and back."""
    try:
        translated = chat_request_to_gemini(responses_request_to_chat(scope.call.body))
    except TranslationError as exc:
        raise BadRequest(exc.message, param=exc.param, code=exc.code) from None
    estimate = estimate_for(scope.gate, translated.body, attempt.model, scope.policy)
    permit = await scope.admit(
        attempt,
        request_id,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.output_tokens,
        terms=gemini_billing_terms(translated.body),
        input_is_bounded=estimate.input_is_bounded,
    )
    exchange = translated_responses_exchange(translated, estimate, permit, scope.call.body)
    return permit, exchange


async def _prepare_gemini_embeddings(
    scope: CallScope, attempt: Attempt, request_id: str
) -> tuple[Permit, Exchange]:
    """An OpenAI embeddings attempt served by Gemini (``batchEmbedContents``)."""
    try:
        translated = embeddings_request_to_gemini(scope.call.body, gemini_model=attempt.model)
    except TranslationError as exc:
        raise BadRequest(exc.message, param=exc.param, code=exc.code) from None
    price = scope.gate.pricing.get(attempt.model)
    input_tokens = estimate_embed_content(
        translated.body, context_window=price.context_window if price else 0
    )
    permit = await scope.admit(
        attempt, request_id, input_tokens=input_tokens, max_output_tokens=None
    )
    return permit, translated_embeddings_exchange(translated, permit)


async def _prepare_anthropic(
    scope: CallScope, attempt: Attempt, request_id: str
) -> tuple[Permit, Exchange]:
    """An OpenAI chat attempt served by Claude, translated both ways."""
    price = scope.gate.pricing.get(attempt.model)
    # Anthropic requires max_tokens: without one, the policy's default for the model, else the
    # model's own output limit, is sent (and is the bound reserved for).
    model_max = price.max_output_tokens if price is not None and price.max_output_tokens else 0
    default = scope.policy.default_output_tokens(attempt.model)
    if default is not None and model_max > 0:
        default = min(default, model_max)
    try:
        translated = chat_request_to_anthropic(
            scope.call.body,
            default_max_tokens=default or model_max or _ANTHROPIC_DEFAULT_MAX_TOKENS,
        )
        estimate = estimate_messages_request({**translated.body, "model": attempt.model})
    except (AnthropicTranslationError, AnthropicInvalidBody) as exc:
        code = getattr(exc, "code", None)
        raise BadRequest(exc.message, param=exc.param, code=code) from None
    capability = "llm:stream" if translated.stream else "llm:invoke"
    permit = await anthropic_admit(scope, attempt, request_id, estimate, capability=capability)
    return permit, anthropic_translated_exchange(translated, estimate, permit)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await governed(request, CHAT)


async def responses(request: web.Request) -> web.StreamResponse:
    return await governed(request, RESPONSES)


async def completions(request: web.Request) -> web.StreamResponse:
    return await governed(request, COMPLETIONS)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await governed(request, EMBEDDINGS)


async def models(request: web.Request) -> web.Response:
    """The models the calling tenant may use (priced, allowed, and served by a provider);
    google-genai 3.x lists models here too, and gets Google's layout."""
    if "x-goog-api-key" in request.headers and "authorization" not in request.headers:
        return await gemini_model_list(request)
    tenant_id = (await request.app[KEYS].authenticate(request)).tenant_id
    gate = request.app[GATE]
    policy = await gate.policy_provider.get_policy(tenant_id=tenant_id)
    if policy is None:
        return web.json_response({"object": "list", "data": []})
    router = request.app[ROUTER]
    created = int(time.time())
    today = datetime.fromtimestamp(gate.clock.time(), UTC).date()
    data = [
        {
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": router.owner(model, policy) or "aegis",
        }
        for model in gate.pricing.models()
        if policy.allows_model(model)
        and router.owner(model, policy) is not None
        and not gate.pricing.price(model).is_retired(today)  # refused: not offered
    ]
    return web.json_response({"object": "list", "data": data})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/responses", responses),
        web.post("/v1/completions", completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", models),
    ]

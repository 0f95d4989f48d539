"""OpenAI's API on the proxy: ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``,
``/v1/models``."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Final

from aiohttp import web

from aegis.adapters.gemini import TranslationError, chat_request_to_gemini
from aegis.adapters.openai import (
    InvalidRequestBody,
    count_chat_completion,
    count_responses_object,
    estimate_chat_request,
    estimate_embeddings_request,
    estimate_responses_request,
    observe_chat_chunk,
    observe_responses_event,
    rewrite_chat_request,
    rewrite_responses_request,
    usage_from_chat_completion,
    usage_from_embeddings,
    usage_from_responses_object,
)
from aegis.core import Gate, Permit, Policy
from aegis.proxy.calls import IncomingCall, read_call
from aegis.proxy.errors import BadRequest
from aegis.proxy.exchange import Exchange
from aegis.proxy.gemini_wire import estimate_for, translated_exchange
from aegis.proxy.idempotency import StoredResponse
from aegis.proxy.openai_wire import Endpoint, openai_exchange
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import serve
from aegis.proxy.state import GATE, IDEMPOTENCY, KEYS, ROUTER, UPSTREAMS

__all__ = ["routes"]

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
    stored = store.begin(call.tenant_id, idem_key, call.raw)
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
        store.finish(call.tenant_id, idem_key, stored)
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
    capability = "llm:stream" if stream else endpoint.capability
    body_sha256 = hashlib.sha256(call.raw).hexdigest()
    policy = await gate.policy_for(
        tenant_id=call.tenant_id,
        request_id=call.request_id,
        run_id=call.run_id,
        model=model,
        capability=capability,
        body_sha256=body_sha256,
    )
    plan = request.app[ROUTER].plan(model, policy, cross_type=endpoint is CHAT)

    async def prepare(attempt: Attempt, request_id: str) -> tuple[Permit, Exchange]:
        if attempt.provider_type == "gemini":
            return await _prepare_gemini(gate, call, attempt, request_id, policy, body_sha256)
        price = gate.pricing.get(attempt.model)
        model_max = price.max_output_tokens if price is not None else 0
        permit = await gate.admit(
            tenant_id=call.tenant_id,
            request_id=request_id,
            run_id=call.run_id,
            provider=attempt.provider,
            model=attempt.model,
            input_tokens=estimate.input_tokens,
            max_output_tokens=None
            if endpoint.rewrite is None
            else estimate.output_tokens(model_max),
            capability=capability,
            body_sha256=body_sha256,
            policy=policy,
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
        return permit, exchange

    upstreams = request.app[UPSTREAMS]
    return await serve(request, call, gate, upstreams, plan, prepare)


async def _prepare_gemini(
    gate: Gate,
    call: IncomingCall,
    attempt: Attempt,
    request_id: str,
    policy: Policy,
    body_sha256: str,
) -> tuple[Permit, Exchange]:
    """An OpenAI chat attempt served by Gemini, translated both ways."""
    try:
        translated = chat_request_to_gemini(call.body)
    except TranslationError as exc:
        raise BadRequest(exc.message, param=exc.param, code=exc.code) from None
    estimate = estimate_for(gate, translated.body, attempt.model)
    permit = await gate.admit(
        tenant_id=call.tenant_id,
        request_id=request_id,
        run_id=call.run_id,
        provider=attempt.provider,
        model=attempt.model,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.output_tokens,
        capability="llm:stream" if translated.stream else "llm:invoke",
        body_sha256=body_sha256,
        policy=policy,
    )
    return permit, translated_exchange(translated, estimate, permit)


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await governed(request, CHAT)


async def responses(request: web.Request) -> web.StreamResponse:
    return await governed(request, RESPONSES)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await governed(request, EMBEDDINGS)


async def models(request: web.Request) -> web.Response:
    """The models the calling tenant may use (priced, allowed, and served by a provider)."""
    tenant_id = request.app[KEYS].authenticate(request)
    gate = request.app[GATE]
    policy = await gate.policy_provider.get_policy(tenant_id=tenant_id)
    if policy is None:
        return web.json_response({"object": "list", "data": []})
    router = request.app[ROUTER]
    created = int(time.time())
    data = [
        {
            "id": model,
            "object": "model",
            "created": created,
            "owned_by": router.owner(model, policy) or "aegis",
        }
        for model in gate.pricing.models()
        if policy.allows_model(model) and router.owner(model, policy) is not None
    ]
    return web.json_response({"object": "list", "data": data})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/chat/completions", chat_completions),
        web.post("/v1/responses", responses),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", models),
    ]

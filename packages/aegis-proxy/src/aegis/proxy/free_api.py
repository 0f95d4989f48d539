"""Calls that generate nothing: model lists and model lookups (answered by the proxy from the
tenant's policy and the price list), and the provider calls that cost nothing (counting
tokens, moderation, reading a stored response).

A provider call that costs nothing is still governed like any other: authenticated, checked
against the tenant's policy (the model must be allowed), admitted by the Gate with a
worst case of zero tokens, served by the one attempt loop (:func:`aegis.proxy.serve.serve`)
and receipted at $0. Only the bill differs.

=========================================  ============================================
route                                      answer
=========================================  ============================================
``GET /v1/models/{model}``                 OpenAI's model object (404 when not usable)
``GET /{v1beta,v1}/models``                Gemini's ``models.list`` (a Google client)
``GET /{v1beta,v1}/models/{model}``        Gemini's ``models.get``
``POST /{version}/models/{m}:countTokens`` the provider's count, $0
``POST /v1/responses/input_tokens``        the provider's count, $0
``POST /v1/moderations``                   the provider's verdict, $0
``GET /v1/responses/{id}``                 the stored response, the caller's own only
=========================================  ============================================

``/v1/models`` is both OpenAI's list and google-genai 3.x's (which calls ``/v1``): a request
carrying Google's key header (``x-goog-api-key``) and no ``Authorization`` gets Google's
layout, any other OpenAI's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from aegis.core import ModelPrice, Permit, Policy, Usage
from aegis.proxy.apis import API, GOOGLE, OPENAI, ClientApi
from aegis.proxy.calls import IncomingCall, read_call, request_id_of
from aegis.proxy.errors import BadRequest, NotFound
from aegis.proxy.exchange import Answer, Exchange
from aegis.proxy.gemini_wire import gemini_path
from aegis.proxy.openai_wire import json_object, passthrough_error
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import CallScope, serve
from aegis.proxy.state import GATE, KEYS, RESPONSE_OWNERS, ROUTER, UPSTREAMS

__all__ = [
    "DEFAULT_MODERATION_MODEL",
    "count_tokens",
    "gemini_model_list",
    "model_get",
    "routes",
    "serve_free",
]

DEFAULT_MODERATION_MODEL: Final = "omni-moderation-latest"
"""What OpenAI moderates with when the body names no model."""
_RESPONSE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _is_google_caller(request: web.Request) -> bool:
    return "x-goog-api-key" in request.headers and "authorization" not in request.headers


async def _visible_models(request: web.Request) -> tuple[Policy | None, list[ModelPrice]]:
    """The tenant's policy and the priced models it may use that a provider serves."""
    tenant_id = (await request.app[KEYS].authenticate(request)).tenant_id
    gate = request.app[GATE]
    policy = await gate.policy_provider.get_policy(tenant_id=tenant_id)
    if policy is None:
        return None, []
    router = request.app[ROUTER]
    today = datetime.fromtimestamp(gate.clock.time(), UTC).date()
    prices = []
    for model in gate.pricing.models():
        price = gate.pricing.get(model)
        if (
            price is not None
            and policy.allows_model(model)
            and router.owner(model, policy)
            and not price.is_retired(today)  # refused: not offered
        ):
            prices.append(price)
    return policy, prices


# -- the proxy's own answers: models ----------------------------------------------------------


def _openai_model(price: ModelPrice, owner: str, created: int) -> dict[str, Any]:
    return {"id": price.model, "object": "model", "created": created, "owned_by": owner}


def _gemini_model(price: ModelPrice) -> dict[str, Any]:
    methods = (
        ["embedContent", "batchEmbedContents", "countTokens"]
        if price.kind == "embedding"
        else ["generateContent", "streamGenerateContent", "countTokens"]
    )
    return {
        "name": f"models/{price.model}",
        "baseModelId": price.model,
        "version": price.model,
        "displayName": price.model,
        "inputTokenLimit": price.context_window,
        "outputTokenLimit": price.max_output_tokens,
        "supportedGenerationMethods": methods,
    }


async def gemini_model_list(request: web.Request) -> web.Response:
    """Gemini's ``models.list``: the Gemini models the tenant may use (one page)."""
    request[API] = GOOGLE
    _, prices = await _visible_models(request)
    models = [_gemini_model(p) for p in prices if p.provider == "gemini"]
    return web.json_response({"models": models})


async def _openai_model_get(request: web.Request, model: str) -> web.Response:
    policy, prices = await _visible_models(request)
    router = request.app[ROUTER]
    for price in prices:
        if price.model == model and policy is not None:
            owner = router.owner(model, policy) or "aegis"
            return web.json_response(_openai_model(price, owner, int(time.time())))
    raise NotFound(
        f"The model '{model[:100]}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


async def _gemini_model_get(request: web.Request, model: str) -> web.Response:
    request[API] = GOOGLE
    _, prices = await _visible_models(request)
    for price in prices:
        if price.model == model and price.provider == "gemini":
            return web.json_response(_gemini_model(price))
    raise NotFound(f"models/{model[:100]} is not found or you may not use it", code="not_found")


async def model_get(request: web.Request) -> web.Response:
    """``GET /{version}/models/{model}``: Gemini's ``models.get``, or OpenAI's model lookup
    for an OpenAI client on ``/v1``."""
    version = request.match_info["version"]
    model = request.match_info["target"].removeprefix("models/")
    if version == "v1" and not _is_google_caller(request):
        return await _openai_model_get(request, model)
    return await _gemini_model_get(request, model)


async def gemini_list_route(request: web.Request) -> web.Response:
    return await gemini_model_list(request)


# -- provider calls that cost nothing ---------------------------------------------------------


async def serve_free(
    request: web.Request,
    call: IncomingCall,
    *,
    model: str,
    provider_type: str,
    path: Callable[[Attempt], str],
    api: ClientApi,
    method: str = "POST",
    payload: bytes | None = None,
    plan: list[Attempt] | None = None,
    on_answer: Callable[[Mapping[str, Any]], None] | None = None,
) -> web.StreamResponse:
    """Serve a call the provider does not bill: governed (policy, admission with a worst case
    of zero, receipt) through the one attempt loop, answered as the provider answered."""
    scope = await CallScope.open(request.app[GATE], call, model, "llm:invoke")
    if plan is None:
        plan = [
            a
            for a in request.app[ROUTER].plan(model, scope.policy, cross_type=False)
            if a.provider_type == provider_type
        ]
    if not plan:
        kind = "OpenAI-compatible" if provider_type == "openai" else "Gemini"
        raise BadRequest(
            f"{request.path} is served by {kind} providers only; none serves {model!r}",
            param="model",
        )

    async def prepare(attempt: Attempt, request_id: str) -> tuple[Permit, Exchange]:
        # Nothing is generated: the worst case is zero tokens, the receipt says $0.
        permit = await scope.admit(attempt, request_id, input_tokens=0, max_output_tokens=0)

        def read_answer(raw: bytes) -> Answer:
            data = json_object(raw)
            if on_answer is not None:
                on_answer(data)
            # Free at the provider: nothing to bill, so nothing is counted.
            return Answer(raw, Usage(), "reported")

        exchange = Exchange(
            path=path(attempt),
            payload=call.raw if payload is None else payload,
            client=api,
            read_answer=read_answer,
            client_error=passthrough_error(attempt.provider),
            method=method,
        )
        return permit, exchange

    upstreams = request.app[UPSTREAMS]
    return await serve(request, scope, upstreams, plan, prepare)


def _model_of(call: IncomingCall, default: str | None = None) -> str:
    model = call.body.get("model", default)
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string", param="model")
    return model


async def moderations(request: web.Request) -> web.StreamResponse:
    """``POST /v1/moderations``, free at OpenAI."""
    call = await read_call(request)
    model = _model_of(call, DEFAULT_MODERATION_MODEL)
    return await serve_free(
        request,
        call,
        model=model,
        provider_type="openai",
        path=lambda _: "/moderations",
        api=OPENAI,
    )


async def input_tokens(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses/input_tokens``: the provider counts a Responses body's input."""
    call = await read_call(request)
    return await serve_free(
        request,
        call,
        model=_model_of(call),
        provider_type="openai",
        path=lambda _: "/responses/input_tokens",
        api=OPENAI,
    )


async def count_tokens(request: web.Request, call: IncomingCall, model: str) -> web.StreamResponse:
    """Gemini's ``:countTokens`` (free at Google), forwarded as sent."""
    version = request.match_info["version"]
    return await serve_free(
        request,
        call,
        model=model,
        provider_type="gemini",
        path=lambda a: gemini_path(a.model, "countTokens", version),
        api=GOOGLE,
    )


async def stored_response(request: web.Request) -> web.StreamResponse:
    """``GET /v1/responses/{id}``: a response this tenant made through this proxy, read from
    the provider that stores it; any other id is 404 (the same answer whether it exists)."""
    identity = await request.app[KEYS].authenticate(request)
    tenant_id = identity.tenant_id
    response_id = request.match_info["response_id"]
    owner = None
    if _RESPONSE_ID.fullmatch(response_id):
        owner = request.app[RESPONSE_OWNERS].owner(response_id, tenant_id)
    if owner is None or owner.provider not in request.app[ROUTER].providers:
        raise NotFound(f"No response with id '{response_id[:128]}' found.", param="response_id")
    call = IncomingCall(
        tenant_id=tenant_id,
        key=identity.key,
        request_id=request_id_of(request),
        run_id=None,
        raw=b"",
        body={},
    )
    provider = request.app[ROUTER].providers[owner.provider]
    return await serve_free(
        request,
        call,
        model=owner.model,
        provider_type=provider.type,
        path=lambda _: f"/responses/{response_id}",
        api=OPENAI,
        method="GET",
        payload=b"",
        plan=[Attempt(owner.provider, provider.type, owner.model)],
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/{version:v1beta|v1alpha}/models", gemini_list_route),
        web.get("/{version:v1beta|v1|v1alpha}/models/{target}", model_get),
        web.post("/v1/moderations", moderations),
        web.post("/v1/responses/input_tokens", input_tokens),
        web.get("/v1/responses/{response_id}", stored_response),
    ]

"""Anthropic's Messages API on the proxy, so an anthropic SDK (or any tool that honours
``ANTHROPIC_BASE_URL``) works with only its base URL and key changed: ``POST /v1/messages``
(streamed or not) and ``POST /v1/messages/count_tokens``.

The tenant's virtual key comes as ``x-api-key`` (what Anthropic's clients send) or
``Authorization: Bearer``. Errors are Anthropic's ``{"type": "error", "error": {type,
message}}``; a budget stop is ``429 rate_limit_error`` naming the budget, with
``x-should-retry: false`` so the SDK does not retry it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from aegis.adapters.anthropic import (
    InvalidRequestBody,
    billing_terms,
    estimate_count_tokens_request,
    estimate_messages_request,
)
from aegis.core import Permit
from aegis.proxy.anthropic_wire import admit, count_tokens_exchange, native_exchange
from aegis.proxy.apis import ANTHROPIC, API
from aegis.proxy.calls import IncomingCall, read_call
from aegis.proxy.errors import BadRequest
from aegis.proxy.exchange import Exchange
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import CallScope, serve
from aegis.proxy.state import GATE, ROUTER, UPSTREAMS

__all__ = ["routes"]

T = TypeVar("T")


async def _read(request: web.Request) -> IncomingCall:
    request[API] = ANTHROPIC  # errors from here on are in Anthropic's shape
    return await read_call(request)


def _bounded(estimate: Callable[[Mapping[str, Any]], T], call: IncomingCall) -> T:
    """The body's estimate; a body the API would refuse is a 400 naming the field."""
    try:
        return estimate(call.body)
    except InvalidRequestBody as exc:
        raise BadRequest(exc.message, param=exc.param) from None


async def _scope(
    request: web.Request, call: IncomingCall, model: str, capability: str
) -> tuple[CallScope, list[Attempt]]:
    scope = await CallScope.open(request.app[GATE], call, model, capability)
    plan = [
        a
        for a in request.app[ROUTER].plan(model, scope.policy, cross_type=False)
        if a.provider_type == "anthropic"
    ]
    if not plan:
        raise BadRequest(f"no Anthropic provider serves model {model!r}", param="model")
    return scope, plan


async def messages(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages``: governed, bytes passed through, usage read on the way."""
    call = await _read(request)
    estimate = _bounded(estimate_messages_request, call)
    capability = "llm:stream" if estimate.stream else "llm:invoke"
    scope, plan = await _scope(request, call, estimate.model, capability)

    async def prepare(attempt: Attempt, request_id: str) -> tuple[Permit, Exchange]:
        same_model = attempt.model == estimate.model
        body = call.body if same_model else {**call.body, "model": attempt.model}
        attempt_estimate = estimate if same_model else estimate_messages_request(body)
        # Web searches reserve their fee.
        permit = await admit(
            scope, attempt, request_id, attempt_estimate, terms=billing_terms(body)
        )
        raw = call.raw if same_model else None
        return permit, native_exchange(body, raw, attempt_estimate, permit, request.headers)

    upstreams = request.app[UPSTREAMS]
    return await serve(request, scope, upstreams, plan, prepare)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """``POST /v1/messages/count_tokens``: free at Anthropic, so governed (the model must be
    allowed, rate limits apply) and receipted, but nothing is reserved or charged."""
    call = await _read(request)
    estimate = _bounded(estimate_count_tokens_request, call)
    scope, plan = await _scope(request, call, estimate.model, "llm:invoke")

    async def prepare(attempt: Attempt, request_id: str) -> tuple[Permit, Exchange]:
        permit = await scope.admit(attempt, request_id, input_tokens=0, max_output_tokens=0)
        raw = call.raw if attempt.model == estimate.model else _with_model(call, attempt.model)
        return permit, count_tokens_exchange(raw, permit, request.headers)

    upstreams = request.app[UPSTREAMS]
    return await serve(request, scope, upstreams, plan, prepare)


def _with_model(call: IncomingCall, model: str) -> bytes:
    return json.dumps({**call.body, "model": model}, separators=(",", ":")).encode()


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/messages", messages),
        web.post("/v1/messages/count_tokens", count_tokens),
    ]

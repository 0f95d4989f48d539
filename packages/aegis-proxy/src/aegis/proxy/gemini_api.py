"""Gemini's REST API on the proxy, so a google-genai client works with only ``base_url``
changed: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` (SSE
with ``alt=sse``, else one JSON array as Google answers), ``:embedContent`` /
``:batchEmbedContents`` and ``:countTokens`` (free, see :mod:`aegis.proxy.free_api`)."""

from __future__ import annotations

import re
from typing import Final

from aiohttp import web

from aegis.adapters.gemini import billing_terms, estimate_embed_content
from aegis.core import STANDARD_TERMS, Permit
from aegis.proxy.apis import API, GOOGLE
from aegis.proxy.calls import read_call
from aegis.proxy.errors import BadRequest, NotFound
from aegis.proxy.exchange import Exchange
from aegis.proxy.free_api import count_tokens
from aegis.proxy.gemini_wire import embed_exchange, estimate_for, native_exchange
from aegis.proxy.routing import Attempt
from aegis.proxy.serve import CallScope, serve
from aegis.proxy.state import GATE, ROUTER, UPSTREAMS

__all__ = ["routes"]

_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_GENERATE: Final = frozenset({"generateContent", "streamGenerateContent"})
_EMBED: Final = frozenset({"embedContent", "batchEmbedContents"})


async def model_action(request: web.Request) -> web.StreamResponse:
    request[API] = GOOGLE
    model, _, action = request.match_info["target"].partition(":")
    if not _MODEL_NAME.fullmatch(model):
        # The name becomes part of the upstream URL: nothing that could walk its path.
        raise BadRequest(f"invalid model name {model[:100]!r}", param="model")
    version = request.match_info["version"]
    if action not in _GENERATE | _EMBED | {"countTokens"}:
        raise NotFound(f"unknown action {action!r}", code="not_found")
    call = await read_call(request)
    if action == "countTokens":
        return await count_tokens(request, call, model)
    gate = request.app[GATE]
    if action in _EMBED:
        capability = "embeddings:create"
    else:
        capability = "llm:stream" if action == "streamGenerateContent" else "llm:invoke"
    scope = await CallScope.open(gate, call, model, capability)
    plan = [
        a
        for a in request.app[ROUTER].plan(model, scope.policy, cross_type=False)
        if a.provider_type == "gemini"
    ]
    if not plan:
        raise BadRequest(f"no Gemini provider serves model {model!r}", param="model")

    async def prepare(attempt: Attempt, request_id: str) -> tuple[Permit, Exchange]:
        price = gate.pricing.get(attempt.model)
        terms = STANDARD_TERMS
        bounded = True
        if action in _EMBED:
            input_tokens = estimate_embed_content(
                call.body, context_window=price.context_window if price else 0
            )
            output_tokens: int | None = None
        else:
            estimate = estimate_for(gate, call.body, attempt.model, scope.policy)
            input_tokens, output_tokens = estimate.input_tokens, estimate.output_tokens
            terms, bounded = billing_terms(call.body), estimate.input_is_bounded
        permit = await scope.admit(
            attempt,
            request_id,
            input_tokens=input_tokens,
            max_output_tokens=output_tokens,
            terms=terms,
            input_is_bounded=bounded,
        )
        if action in _EMBED:
            return permit, embed_exchange(call.raw, permit, version=version, action=action)
        exchange = native_exchange(
            call.body,
            estimate,
            permit,
            version=version,
            action=action,
            sse=request.query.get("alt") == "sse",
        )
        return permit, exchange

    upstreams = request.app[UPSTREAMS]
    return await serve(request, scope, upstreams, plan, prepare)


def routes() -> list[web.RouteDef]:
    # google-genai 3.x calls /v1 by default, older releases and REST examples /v1beta.
    return [web.post("/{version:v1beta|v1|v1alpha}/models/{target}", model_action)]

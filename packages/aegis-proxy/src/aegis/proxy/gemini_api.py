"""Gemini's REST API on the proxy, so a google-genai client works with only ``base_url``
changed: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` and
``:embedContent`` / ``:batchEmbedContents``."""

from __future__ import annotations

import hashlib
import re

from aiohttp import web

from aegis.adapters.gemini import estimate_embed_content
from aegis.core import Gate, Usage
from aegis.proxy.calls import IncomingCall, policy_for, read_call
from aegis.proxy.errors import BadRequest, NotFound, UpstreamUnavailable
from aegis.proxy.forward import (
    AttemptFailed,
    passthrough_headers,
    request_upstream,
    settle,
    success_headers,
)
from aegis.proxy.gemini_forward import estimate_for, gemini_path, native_generate
from aegis.proxy.ratelimit_headers import RATE_LIMITS
from aegis.proxy.routing import Attempt
from aegis.proxy.state import GATE, ROUTER, UPSTREAMS

__all__ = ["routes"]

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_GENERATE = frozenset({"generateContent", "streamGenerateContent"})
_EMBED = frozenset({"embedContent", "batchEmbedContents"})


async def model_action(request: web.Request) -> web.StreamResponse:
    model, _, action = request.match_info["target"].partition(":")
    if not _MODEL_NAME.fullmatch(model):
        # The name becomes part of the upstream URL: nothing that could walk its path.
        raise BadRequest(f"invalid model name {model[:100]!r}", param="model")
    version = request.match_info["version"]
    if action not in _GENERATE | _EMBED:
        raise NotFound(f"unknown action {action!r}", code="not_found")
    call = await read_call(request)
    gate = request.app[GATE]
    policy = await policy_for(gate, call, model)
    plan = [
        a
        for a in request.app[ROUTER].plan(model, policy, cross_type=False)
        if a.provider_type == "gemini"
    ]
    if not plan:
        raise BadRequest(f"no Gemini provider serves model {model!r}", param="model")
    body_sha256 = hashlib.sha256(call.raw).hexdigest()
    last: AttemptFailed | None = None
    for number, attempt in enumerate(plan):
        try:
            return await _attempt(
                request, gate, call, attempt, number, version, action, body_sha256
            )
        except AttemptFailed as failed:
            last = failed
    assert last is not None
    if last.body:
        return web.Response(status=last.status, body=last.body, headers=last.headers)
    raise UpstreamUnavailable(f"every provider failed; last: {last.reason}", status=last.status)


async def _attempt(
    request: web.Request,
    gate: Gate,
    call: IncomingCall,
    attempt: Attempt,
    number: int,
    version: str,
    action: str,
    body_sha256: str,
) -> web.StreamResponse:
    upstream = request.app[UPSTREAMS][attempt.provider]
    request_id = call.request_id if number == 0 else f"{call.request_id}~{number}"
    if action in _EMBED:
        price = gate.pricing.get(attempt.model)
        input_tokens = estimate_embed_content(
            call.body, context_window=price.context_window if price else 0
        )
        permit = await gate.admit(
            tenant_id=call.tenant_id,
            request_id=request_id,
            run_id=call.run_id,
            provider=attempt.provider,
            model=attempt.model,
            input_tokens=input_tokens,
            capability="embeddings:create",
            body_sha256=body_sha256,
            key=call.key,
        )
        request[RATE_LIMITS] = permit.rate_limits
        response = await request_upstream(
            gate, permit, upstream, attempt, gemini_path(attempt.model, action, version), call.raw
        )
        if isinstance(response, web.Response):
            return response
        async with response:
            data = await response.read()
        # Gemini's embedding responses carry no usage: the input bound is the bill.
        receipt = await settle(
            gate,
            permit,
            status="ok",
            usage=Usage(input_tokens=input_tokens),
            usage_source="counted",
        )
        headers = passthrough_headers(response.headers)
        headers.update(success_headers(call, receipt.receipt_id, receipt.actual_usd))
        return web.Response(body=data, headers=headers)
    estimate = estimate_for(gate, call.body, attempt.model)
    permit = await gate.admit(
        tenant_id=call.tenant_id,
        request_id=request_id,
        run_id=call.run_id,
        provider=attempt.provider,
        model=attempt.model,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.output_tokens,
        capability="llm:stream" if action == "streamGenerateContent" else "llm:invoke",
        body_sha256=body_sha256,
        key=call.key,
    )
    request[RATE_LIMITS] = permit.rate_limits
    return await native_generate(
        request, gate, upstream, attempt, call, version, action, estimate, permit
    )


def routes() -> list[web.RouteDef]:
    # google-genai 3.x calls /v1 by default, older releases and REST examples /v1beta.
    return [web.post("/{version:v1beta|v1|v1alpha}/models/{target}", model_action)]

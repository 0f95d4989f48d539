"""Governed google-genai calls: admit, call the SDK, settle from ``usage_metadata``, receipt.

Each function turns the SDK arguments into the REST body the SDK will send (with the SDK's own
converters), bounds it with :mod:`.estimate`, reserves through :meth:`Gate.call`, sends the
request with the permit's output limit (``max_output_tokens``, plus an explicit thinking budget
when the Gate clamped a thinking model), and charges the reported usage read by :mod:`.usage`.

One governed call is one upstream request, so the SDK's automatic function calling and
automatic continuation (which would send more requests under the same reservation) are turned
off; function calls come back to the caller.

``google.genai.errors.APIError`` (and subclasses) release the reservation, leave a receipt with
the upstream status, and propagate unchanged; so does any other failure. A stream that ends
early (the caller stops, or the connection breaks) is charged the best upper bound of what it
used (:meth:`StreamUsage.upper_bound`), recorded as ``counted``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from google import genai
from google.genai import errors as genai_errors, types

from aegis.core import (
    BillingTerms,
    Gate,
    GovernedCall,
    GovernedResponse,
    GovernedStream as CoreGovernedStream,
    StreamState,
)

from ._sdk_wire import embed_body, generate_body, to_wire
from .estimate import (
    GenerateEstimate,
    OutputLimits,
    estimate_embed_content,
    estimate_generate_content,
    output_limits,
)
from .terms import billing_terms
from .usage import StreamUsage, usage_from_metadata, usage_from_response

__all__ = [
    "PROVIDER",
    "GovernedResponse",
    "GovernedStream",
    "embed_content_via_gate",
    "generate_content_stream_via_gate",
    "generate_content_via_gate",
]

logger = logging.getLogger(__name__)

PROVIDER: Final = "gemini"


def _config(
    config: types.GenerateContentConfigOrDict | None,
) -> types.GenerateContentConfig:
    if config is None:
        parsed = types.GenerateContentConfig()
    elif isinstance(config, types.GenerateContentConfig):
        parsed = config
    else:
        parsed = types.GenerateContentConfig.model_validate(config)
    return parsed.model_copy(
        update={
            "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
            "automatic_continuation": False,
        }
    )


def _limited(
    config: types.GenerateContentConfig, limits: OutputLimits
) -> types.GenerateContentConfig:
    update: dict[str, object] = {"max_output_tokens": limits.max_output_tokens}
    if limits.thinking_budget is not None:
        thinking = config.thinking_config or types.ThinkingConfig()
        update["thinking_config"] = thinking.model_copy(
            update={"thinking_budget": limits.thinking_budget, "thinking_level": None}
        )
    return config.model_copy(update=update)


def _estimate(
    gate: Gate,
    client: genai.Client,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    config: types.GenerateContentConfig,
) -> tuple[GenerateEstimate, BillingTerms]:
    price = gate.pricing.get(model)
    body = generate_body(client, model, contents, config)
    estimate = estimate_generate_content(
        body,
        model=model,
        model_max_output_tokens=0 if price is None else price.max_output_tokens,
        context_window=0 if price is None else price.context_window,
    )
    return estimate, billing_terms(body)


@asynccontextmanager
async def _upstream(call: GovernedCall) -> AsyncIterator[None]:
    """Record the upstream outcome of the block on ``call``."""
    try:
        yield
    except genai_errors.APIError as exc:
        call.upstream_status = exc.code
        call.error = f"{type(exc).__name__}: {exc.code} {exc.status}"
        logger.info("gemini call %s failed upstream: %s", call.permit.request_id, exc.code)
        raise
    call.upstream_status = 200


async def generate_content_via_gate(
    *,
    gate: Gate,
    client: genai.Client,
    tenant_id: str,
    request_id: str,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    config: types.GenerateContentConfigOrDict | None = None,
    run_id: str | None = None,
) -> GovernedResponse[types.GenerateContentResponse]:
    """``client.aio.models.generate_content`` under the Gate (capability ``llm:invoke``).

    Raises the Gate's :class:`~aegis.core.Denied` before any request is sent, and the SDK's
    errors unchanged after settling.
    """
    cfg = _config(config)
    estimate, terms = _estimate(gate, client, model, contents, cfg)
    async with gate.call(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=model,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.output_tokens,
        run_id=run_id,
        capability="llm:invoke",
        terms=terms,
        input_is_bounded=estimate.input_is_bounded,
    ) as call:
        sent = _limited(cfg, output_limits(estimate, call.permit.max_output_tokens))
        async with _upstream(call):
            response = await client.aio.models.generate_content(
                model=model, contents=contents, config=sent
            )
        usage = usage_from_response(to_wire(response), terms.service_tier)
        if usage is not None:
            call.record(usage)
    assert call.receipt is not None  # set by Gate.call on exit
    return GovernedResponse(response, call.receipt)


class GovernedStream(CoreGovernedStream[types.GenerateContentResponse, StreamState]):
    """The chunks of a governed Gemini stream, as they arrive; settles when it ends or is
    closed (in ``async with``, by :meth:`aclose`, or when collected)."""

    __slots__ = ()


async def _stream(
    state: StreamState,
    *,
    gate: Gate,
    client: genai.Client,
    tenant_id: str,
    request_id: str,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    cfg: types.GenerateContentConfig,
    estimate: GenerateEstimate,
    terms: BillingTerms,
    run_id: str | None,
) -> AsyncGenerator[types.GenerateContentResponse | None, None]:
    async with gate.call(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=model,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.output_tokens,
        run_id=run_id,
        capability="llm:stream",
        terms=terms,
        input_is_bounded=estimate.input_is_bounded,
    ) as call:
        state.call = call
        yield None  # admitted; nothing has been sent yet
        sent = _limited(cfg, output_limits(estimate, call.permit.max_output_tokens))
        tracker = StreamUsage(terms.service_tier)
        async with _upstream(call):
            upstream = await client.aio.models.generate_content_stream(
                model=model, contents=contents, config=sent
            )
            try:
                async for chunk in upstream:
                    call.upstream_status = 200  # a chunk arrived: the upstream answered 200
                    tracker.observe(to_wire(chunk))
                    call.record(tracker.upper_bound(estimate.input_tokens), source="counted")
                    yield chunk
            finally:
                aclose = getattr(upstream, "aclose", None)
                if aclose is not None:
                    await aclose()
        reported = tracker.usage()
        if reported is not None:
            call.record(reported, source="reported")


async def generate_content_stream_via_gate(
    *,
    gate: Gate,
    client: genai.Client,
    tenant_id: str,
    request_id: str,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    config: types.GenerateContentConfigOrDict | None = None,
    run_id: str | None = None,
) -> GovernedStream:
    """``client.aio.models.generate_content_stream`` under the Gate (capability ``llm:stream``).

    Admission happens here, so a denial raises before any request is sent; the request goes
    out when the stream is first read. The charge is the last cumulative ``usage_metadata``.
    """
    cfg = _config(config)
    estimate, terms = _estimate(gate, client, model, contents, cfg)
    state = StreamState()
    agen = _stream(
        state,
        gate=gate,
        client=client,
        tenant_id=tenant_id,
        request_id=request_id,
        model=model,
        contents=contents,
        cfg=cfg,
        estimate=estimate,
        terms=terms,
        run_id=run_id,
    )
    await agen.__anext__()
    return GovernedStream(agen, state)


async def embed_content_via_gate(
    *,
    gate: Gate,
    client: genai.Client,
    tenant_id: str,
    request_id: str,
    model: str,
    contents: types.ContentListUnion | types.ContentListUnionDict,
    config: types.EmbedContentConfigOrDict | None = None,
    run_id: str | None = None,
) -> GovernedResponse[types.EmbedContentResponse]:
    """``client.aio.models.embed_content`` under the Gate (capability ``embeddings:create``).

    Charged the reported prompt tokens when Gemini reports them, else the reservation.
    """
    if config is None or isinstance(config, types.EmbedContentConfig):
        cfg = config
    else:
        cfg = types.EmbedContentConfig.model_validate(config)
    price = gate.pricing.get(model)
    input_tokens = estimate_embed_content(
        embed_body(client, model, contents, cfg),
        context_window=0 if price is None else price.context_window,
    )
    async with gate.call(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=model,
        input_tokens=input_tokens,
        max_output_tokens=0,
        run_id=run_id,
        capability="embeddings:create",
    ) as call:
        async with _upstream(call):
            response = await client.aio.models.embed_content(
                model=model, contents=contents, config=cfg
            )
        if response.usage_metadata is not None:
            call.record(usage_from_metadata(to_wire(response.usage_metadata)))
    assert call.receipt is not None
    return GovernedResponse(response, call.receipt)

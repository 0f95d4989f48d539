"""Governed calls through the official ``openai`` SDK (``AsyncOpenAI``).

Each function takes the request body as the JSON that goes over the wire (a dict), admits it
at the Gate (one admission per logical call: the SDK's own retries on 408/409/429/5xx happen
inside it and are never charged twice), sends it with the permit's output limit, and settles
from the usage the upstream reports. Keys of the body the SDK has no parameter for are passed
through ``extra_body``, so any OpenAI-compatible server's extensions reach it unchanged.

The functions return the SDK's own objects. Their wire JSON is ``result.to_dict()`` (the SDK
keeps exactly the fields the server sent). Streams are :class:`GovernedStream`\\ s, whose
``receipt`` is set once they settle.

SDK errors (``APIStatusError`` and its subclasses, ``APITimeoutError``, ``APIConnectionError``)
release the reservation, leave a receipt with the upstream status, and propagate unchanged.
Governance refusals raise :mod:`aegis.core`'s :class:`~aegis.core.Denied` errors before any
request is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import openai
from aegis.adapters.openai.estimate import (
    RequestEstimate,
    estimate_chat_request,
    estimate_embeddings_request,
    estimate_responses_request,
)
from aegis.adapters.openai.meter import (
    OutputMeter,
    delta_bytes,
    observe_chat_chunk,
    observe_responses_event,
)
from aegis.adapters.openai.rewrite import (
    ChatLimitField,
    rewrite_chat_request,
    rewrite_responses_request,
)
from aegis.adapters.openai.stream import (
    GovernedStream,
    StreamProtocol,
    describe_error,
    upstream_status_of,
)
from aegis.adapters.openai.usage import (
    usage_from_chat,
    usage_from_chat_completion,
    usage_from_embeddings,
    usage_from_responses_object,
)
from aegis.core import ConfigError, Gate, Permit, sdk_kwargs, text_tokens_upper_bound, wire_field
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

__all__ = ["chat_completions_via_gate", "embeddings_via_gate", "responses_via_gate"]

PROVIDER: Final = "openai"


async def _admit(
    gate: Gate,
    estimate: RequestEstimate,
    *,
    tenant_id: str,
    request_id: str,
    run_id: str | None,
    capability: str,
) -> Permit:
    price = gate.pricing.get(estimate.model)
    input_tokens = estimate.input_tokens
    output_tokens: int | None = None
    if price is not None:
        if capability != "embeddings:create":
            if estimate.max_output_tokens is None and price.max_output_tokens <= 0:
                raise ConfigError(
                    f"model {estimate.model!r} has no max_output_tokens in the price table and "
                    "the request sets no output limit, so its cost cannot be bounded",
                    field=f"pricing.models.{estimate.model}.max_output_tokens",
                )
            output_tokens = estimate.output_tokens(price.max_output_tokens)
        else:
            output_tokens = 0
    # An unknown model reaches the Gate too: it denies it, with a receipt.
    return await gate.admit(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=estimate.model,
        input_tokens=input_tokens,
        max_output_tokens=output_tokens,
        run_id=run_id,
        capability=capability,
        # Input the body does not hold: the Gate adds the policy's allowance for it.
        input_is_bounded=estimate.input_is_bounded,
    )


async def _fail(gate: Gate, permit: Permit, exc: BaseException) -> None:
    cancelled = isinstance(exc, asyncio.CancelledError)
    await asyncio.shield(
        gate.settle(
            permit,
            status="cancelled" if cancelled else "upstream_error",
            upstream_status=upstream_status_of(exc),
            error="cancelled" if cancelled else describe_error(exc),
        )
    )


def _per_choice_limit(permit: Permit, estimate: RequestEstimate) -> int:
    # The Gate may have lowered the total; spread what it allowed over the choices.
    return max(1, (permit.max_output_tokens - estimate.extra_output_tokens) // estimate.n)


def _responses_failure(event: Any) -> str | None:
    kind = wire_field(event, "type")
    if kind == "error":
        code = wire_field(event, "code")
        return f"upstream error event: {code}" if code else "upstream error event"
    if kind == "response.failed":
        error = wire_field(wire_field(event, "response"), "error")
        code = wire_field(error, "code")
        return f"response.failed: {code}" if code else "response.failed"
    return None


def _observe_sdk_chunk(meter: OutputMeter, chunk: Any) -> bool:
    # The SDK's chunks are pydantic models with known fields: reading them as attributes is
    # several times faster per chunk than the generic reader, which handles any shape.
    if not isinstance(chunk, ChatCompletionChunk):
        return observe_chat_chunk(meter, chunk)
    within = True
    for choice in chunk.choices:
        delta = choice.delta
        if delta is None:
            continue
        content = delta.content
        if delta.tool_calls or delta.refusal or delta.function_call or delta.model_extra:
            nbytes = delta_bytes(delta)
        elif content:
            nbytes = text_tokens_upper_bound(content)
        else:
            continue
        if nbytes and not meter.add(choice.index, nbytes):
            within = False
    if chunk.usage is not None:
        usage = usage_from_chat(chunk.usage, chunk.service_tier)
        if usage is not None and not meter.report(usage) and chunk.choices:
            within = False
    return within


def _chat_usage_only(chunk: Any) -> bool:
    return not wire_field(chunk, "choices") and wire_field(chunk, "usage") is not None


_CHAT_STREAM: Final = StreamProtocol(
    observe=_observe_sdk_chunk,
    is_usage_only=_chat_usage_only,
    failure=None,
    limit_name="max_completion_tokens",
)
_RESPONSES_STREAM: Final = StreamProtocol(
    observe=observe_responses_event,
    is_usage_only=lambda _event: False,
    failure=_responses_failure,
    limit_name="max_output_tokens",
)


async def chat_completions_via_gate(
    *,
    gate: Gate,
    client: openai.AsyncOpenAI,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    run_id: str | None = None,
    limit_field: ChatLimitField = "max_completion_tokens",
) -> ChatCompletion | GovernedStream[ChatCompletionChunk]:
    """A governed ``chat.completions.create``: the SDK's ``ChatCompletion``, or with
    ``body["stream"]`` a :class:`GovernedStream` of ``ChatCompletionChunk``.

    ``request_id`` is the idempotency key of the reservation (a reused id is refused).
    ``limit_field`` is the field that carries the output limit when the body sets none
    (``max_tokens`` for servers that predate ``max_completion_tokens``).
    """
    estimate = estimate_chat_request(body)
    permit = await _admit(
        gate,
        estimate,
        tenant_id=tenant_id,
        request_id=request_id,
        run_id=run_id,
        capability="llm:stream" if estimate.stream else "llm:invoke",
    )
    try:
        per_choice = _per_choice_limit(permit, estimate)
        rewrite = rewrite_chat_request(body, max_output_tokens=per_choice, limit_field=limit_field)
        create = client.chat.completions.create
        result: ChatCompletion | openai.AsyncStream[ChatCompletionChunk] = await create(
            **sdk_kwargs(create, rewrite.body)
        )
    except BaseException as exc:
        await _fail(gate, permit, exc)
        raise
    if isinstance(result, openai.AsyncStream):
        return GovernedStream(
            gate=gate,
            permit=permit,
            upstream=result,
            meter=OutputMeter(max_output_tokens=per_choice, n=estimate.n),
            protocol=_CHAT_STREAM,
            withhold_usage=not rewrite.client_wants_usage,
        )
    await gate.settle(permit, usage=usage_from_chat_completion(result), upstream_status=200)
    return result


async def responses_via_gate(
    *,
    gate: Gate,
    client: openai.AsyncOpenAI,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    run_id: str | None = None,
) -> Response | GovernedStream[ResponseStreamEvent]:
    """A governed ``responses.create``: the SDK's ``Response``, or with ``body["stream"]`` a
    :class:`GovernedStream` of its stream events (billed from ``response.completed``)."""
    estimate = estimate_responses_request(body)
    permit = await _admit(
        gate,
        estimate,
        tenant_id=tenant_id,
        request_id=request_id,
        run_id=run_id,
        capability="llm:stream" if estimate.stream else "llm:invoke",
    )
    try:
        limit = _per_choice_limit(permit, estimate)
        rewrite = rewrite_responses_request(body, max_output_tokens=limit)
        create = client.responses.create
        result: Response | openai.AsyncStream[ResponseStreamEvent] = await create(
            **sdk_kwargs(create, rewrite.body)
        )
    except BaseException as exc:
        await _fail(gate, permit, exc)
        raise
    if isinstance(result, openai.AsyncStream):
        return GovernedStream(
            gate=gate,
            permit=permit,
            upstream=result,
            meter=OutputMeter(max_output_tokens=limit),
            protocol=_RESPONSES_STREAM,
            withhold_usage=False,
        )
    failed = result.status == "failed"
    await gate.settle(
        permit,
        status="upstream_error" if failed else "ok",
        usage=usage_from_responses_object(result),
        upstream_status=200,
        error=_responses_failure({"type": "response.failed", "response": result})
        if failed
        else None,
    )
    return result


async def embeddings_via_gate(
    *,
    gate: Gate,
    client: openai.AsyncOpenAI,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    run_id: str | None = None,
) -> CreateEmbeddingResponse:
    """A governed ``embeddings.create`` (capability ``embeddings:create``; input only)."""
    estimate = estimate_embeddings_request(body)
    permit = await _admit(
        gate,
        estimate,
        tenant_id=tenant_id,
        request_id=request_id,
        run_id=run_id,
        capability="embeddings:create",
    )
    try:
        create = client.embeddings.create
        result: CreateEmbeddingResponse = await create(**sdk_kwargs(create, body))
    except BaseException as exc:
        await _fail(gate, permit, exc)
        raise
    await gate.settle(permit, usage=usage_from_embeddings(result), upstream_status=200)
    return result

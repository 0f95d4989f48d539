"""Governed calls to Gemini upstreams: native requests passed through, and OpenAI chat requests
translated both ways (which is what lets a tenant fall back from OpenAI to Gemini)."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Any

import aiohttp
from aiohttp import web

from aegis.adapters.gemini import (
    SSE_DONE,
    ChatStreamTranslator,
    GeminiChatRequest,
    GenerateEstimate,
    StreamUsage,
    estimate_generate_content,
    gemini_response_to_chat,
    openai_error_body,
    output_limits,
    parse_error_body,
    sse_event,
    stream_error_event,
    usage_from_response,
    with_output_limits,
)
from aegis.core import Gate, Permit, ReceiptStatus, SseParser
from aegis.proxy.calls import IncomingCall
from aegis.proxy.forward import (
    event_stream,
    passthrough_headers,
    request_upstream,
    settle,
    success_headers,
)
from aegis.proxy.routing import Attempt
from aegis.proxy.timing import first_chunk
from aegis.proxy.upstream import Upstream

__all__ = [
    "estimate_for",
    "gemini_path",
    "limited_body",
    "native_generate",
    "translated_chat",
]


def estimate_for(gate: Gate, body: dict[str, object], model: str) -> GenerateEstimate:
    """The worst case of a generate body for ``model``, from the model's catalogue limits."""
    price = gate.pricing.get(model)
    return estimate_generate_content(
        body,
        model=model,
        model_max_output_tokens=price.max_output_tokens if price else 0,
        context_window=price.context_window if price else 0,
    )


def gemini_path(model: str, action: str, version: str = "v1beta") -> str:
    """The REST path of a Gemini model action (``alt=sse`` for streams)."""
    suffix = "?alt=sse" if action == "streamGenerateContent" else ""
    return f"/{version}/models/{model}:{action}{suffix}"


def limited_body(body: dict[str, Any], estimate: GenerateEstimate, permit: Permit) -> bytes:
    """The body carrying the output limits the permit was granted (always explicit, so the
    upstream enforces the worst case that was reserved)."""
    limited = with_output_limits(body, output_limits(estimate, permit.max_output_tokens))
    return json.dumps(limited, separators=(",", ":"), ensure_ascii=False).encode()


def _openai_error(status: int, body: bytes) -> tuple[int, bytes]:
    code, data = openai_error_body(parse_error_body(status, body))
    return code, json.dumps(data).encode()


async def translated_chat(
    request: web.Request,
    gate: Gate,
    upstream: Upstream,
    attempt: Attempt,
    call: IncomingCall,
    translated: GeminiChatRequest,
    estimate: GenerateEstimate,
    permit: Permit,
) -> web.StreamResponse:
    """An OpenAI chat call served by Gemini; the client sees OpenAI's wire format only."""
    action = "streamGenerateContent" if translated.stream else "generateContent"
    response = await request_upstream(
        gate,
        permit,
        upstream,
        attempt,
        gemini_path(attempt.model, action),
        limited_body(translated.body, estimate, permit),
        translate_error=_openai_error,
    )
    if isinstance(response, web.Response):
        return response
    if not translated.stream:
        async with response:
            data = json.loads(await response.read())
        usage = usage_from_response(data)
        completion = gemini_response_to_chat(
            data,
            model=translated.model,
            n=translated.n,
            parallel_tool_calls=translated.parallel_tool_calls,
        )
        receipt = await settle(gate, permit, status="ok", usage=usage, upstream_status=200)
        return web.json_response(
            completion, headers=success_headers(call, receipt.receipt_id, receipt.actual_usd)
        )

    translator = ChatStreamTranslator(
        model=translated.model,
        include_usage=translated.include_usage,
        parallel_tool_calls=translated.parallel_tool_calls,
        n=translated.n,
    )
    out = event_stream(call, permit)
    try:
        status, error = await _pump(request, out, response, translator.usage, translator.feed)
    except asyncio.CancelledError:
        await _settle_stream(gate, permit, translator.usage, "cancelled", "client disconnected")
        raise
    if status == "ok" and translator.is_finished:
        tail = b"".join(sse_event(c) for c in translator.finish()) + SSE_DONE
    elif status == "upstream_error":
        tail = stream_error_event(parse_error_body(502, error or "stream broke"))
    else:
        tail = b""
    if status == "ok" and not translator.is_finished:
        status, error = "upstream_error", "stream ended before every choice finished"
    await _settle_stream(gate, permit, translator.usage, status, error)
    if status != "cancelled":
        await _finish(out, tail)
    return out


async def native_generate(
    request: web.Request,
    gate: Gate,
    upstream: Upstream,
    attempt: Attempt,
    call: IncomingCall,
    version: str,
    action: str,
    estimate: GenerateEstimate,
    permit: Permit,
) -> web.StreamResponse:
    """A Gemini-native generate call: bytes pass through, usage is read on the way."""
    response = await request_upstream(
        gate,
        permit,
        upstream,
        attempt,
        gemini_path(attempt.model, action, version),
        limited_body(call.body, estimate, permit),
    )
    if isinstance(response, web.Response):
        return response
    if action == "generateContent":
        async with response:
            data = await response.read()
        receipt = await settle(
            gate,
            permit,
            status="ok",
            usage=usage_from_response(json.loads(data)),
            upstream_status=200,
        )
        headers = passthrough_headers(response.headers)
        headers.update(success_headers(call, receipt.receipt_id, receipt.actual_usd))
        return web.Response(body=data, headers=headers)
    usage = StreamUsage()
    out = event_stream(call, permit)
    try:
        status, error = await _pump(request, out, response, usage, None)
    except asyncio.CancelledError:
        await _settle_stream(gate, permit, usage, "cancelled", "client disconnected")
        raise
    await _settle_stream(gate, permit, usage, status, error)
    if status != "cancelled":
        await _finish(out, b"")
    return out


async def _pump(
    request: web.Request,
    out: web.StreamResponse,
    response: aiohttp.ClientResponse,
    usage: StreamUsage,
    translate: Any,
) -> tuple[ReceiptStatus, str | None]:
    """Move a Gemini stream to the client (translated when ``translate`` is given)."""
    parser = SseParser()
    try:
        await out.prepare(request)
        async with response:
            async for data in response.content.iter_any():
                first_chunk()  # operator metrics: time to first token
                chunk = bytearray()
                for event in parser.feed(data):
                    if event.data is None:
                        continue
                    try:
                        parsed = json.loads(event.data)
                    except ValueError:
                        return "upstream_error", "upstream sent an unparseable event"
                    if translate is None:
                        usage.observe(parsed)
                        chunk += event.raw
                    else:
                        for piece in translate(parsed):
                            chunk += sse_event(piece)
                if chunk:
                    await out.write(bytes(chunk))
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        return "cancelled", "client disconnected"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return "upstream_error", f"stream broke: {type(exc).__name__}"
    return "ok", None


async def _settle_stream(
    gate: Gate, permit: Permit, usage: StreamUsage, status: ReceiptStatus, error: str | None
) -> None:
    if status == "ok" and usage.reported is not None:
        await settle(gate, permit, status="ok", usage=usage.reported)
    else:
        await settle(
            gate,
            permit,
            status=status,
            usage=usage.upper_bound(permit.input_tokens),
            usage_source="counted",
            error=error,
        )


async def _finish(out: web.StreamResponse, tail: bytes) -> None:
    with suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
        if tail:
            await out.write(tail)
        await out.write_eof()

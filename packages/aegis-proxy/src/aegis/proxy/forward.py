"""Governed forwarding to OpenAI-compatible upstreams: reserve, send, stream bytes through,
meter, settle, receipt.

Bytes pass through untouched except where governance must change them: the output limit the
Gate reserved for, ``stream_options.include_usage`` (whose usage chunk is withheld when the
client did not ask for it), and a stream that runs past its limit is ended cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web

from aegis.adapters.openai import OutputMeter, RequestEstimate, RequestRewrite
from aegis.core import Gate, Permit, Receipt, ReceiptStatus, SseParser, Usage
from aegis.proxy.calls import IncomingCall
from aegis.proxy.routing import Attempt, is_retryable_status
from aegis.proxy.timing import first_chunk, upstream_answered, upstream_sent
from aegis.proxy.upstream import Upstream

__all__ = [
    "AttemptFailed",
    "Endpoint",
    "event_stream",
    "forward_json",
    "forward_stream",
    "passthrough_headers",
    "request_upstream",
    "send",
    "settle",
    "success_headers",
]

logger = logging.getLogger(__name__)

# Hop-by-hop and length headers are the proxy's own business, not the upstream's.
_DROP_HEADERS: Final = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "content-encoding",
        "date",
        "server",
    }
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI endpoint as governance sees it."""

    path: str
    capability: str
    estimate: Callable[[Mapping[str, Any]], RequestEstimate]
    rewrite: Callable[[Mapping[str, Any], int], RequestRewrite] | None
    usage_from_response: Callable[[Any], Usage | None]
    observe: Callable[[OutputMeter, Any], bool] | None = None


class AttemptFailed(Exception):
    """The upstream failed in a way the next provider may fix."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str], reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.body = body
        self.headers = dict(headers)
        self.reason = reason


def success_headers(call: IncomingCall, receipt_id: str, cost_usd: str | None) -> dict[str, str]:
    headers = {"x-request-id": call.request_id, "x-aegis-receipt-id": receipt_id}
    if cost_usd is not None:
        headers["x-aegis-cost-usd"] = cost_usd
    return headers


def passthrough_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}


async def settle(gate: Gate, permit: Permit, **kwargs: Any) -> Receipt:
    # Settling must finish even if the handler is being cancelled (client gone, shutdown).
    upstream_answered()  # operator metrics: every attempt ends in exactly one settle
    return await asyncio.shield(gate.settle(permit, **kwargs))


async def send(upstream: Upstream, path: str, payload: bytes) -> aiohttp.ClientResponse:
    upstream_sent()  # operator metrics: upstream time and fallback attempts
    return await upstream.session.post(
        upstream.url(path), data=payload, headers=upstream.json_headers
    )


ErrorTranslator = Callable[[int, bytes], tuple[int, bytes]]
"""Turns a provider's error (status, body) into the one the client's API expects."""


async def request_upstream(
    gate: Gate,
    permit: Permit,
    upstream: Upstream,
    attempt: Attempt,
    path: str,
    payload: bytes,
    *,
    translate_error: ErrorTranslator | None = None,
) -> aiohttp.ClientResponse | web.Response:
    """Send the call; return the open 2xx response, or the provider's client error as the
    answer. A retryable failure settles the permit and raises :class:`AttemptFailed`."""
    try:
        response = await send(upstream, path, payload)
    except aiohttp.ClientConnectorError as exc:
        # Nothing reached the provider: nothing to pay for.
        reason = f"{type(exc).__name__} from {attempt.provider}"
        await settle(gate, permit, status="upstream_error", error=reason)
        raise AttemptFailed(502, b"", {}, reason) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The request went out and no answer came back: the provider may bill for it, and the
        # usage is unknown, so the whole reservation (an upper bound) is charged.
        reason = f"{type(exc).__name__} from {attempt.provider}"
        await settle(
            gate,
            permit,
            status="upstream_error",
            error=reason,
            usage=worst_case(permit),
            usage_source="reservation",
        )
        raise AttemptFailed(504 if isinstance(exc, TimeoutError) else 502, b"", {}, reason) from exc
    except asyncio.CancelledError:
        await settle(gate, permit, status="cancelled", error="client disconnected")
        raise
    if response.status < 400:
        return response
    async with response:
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            data = b""
    await settle(
        gate,
        permit,
        status="upstream_error",
        upstream_status=response.status,
        error=f"upstream answered {response.status}",
    )
    status = response.status
    headers = passthrough_headers(response.headers)
    if translate_error is not None:
        status, data = translate_error(status, data)
        headers = {"Content-Type": "application/json"}
    if is_retryable_status(response.status):
        raise AttemptFailed(status, data, headers, f"{attempt.provider} answered {status}")
    return web.Response(status=status, body=data, headers=headers)


async def forward_json(
    gate: Gate,
    upstream: Upstream,
    attempt: Attempt,
    endpoint: Endpoint,
    call: IncomingCall,
    permit: Permit,
    payload: bytes,
) -> web.Response:
    """A non-streamed call: send, read, settle from the response's usage, answer."""
    response = await request_upstream(gate, permit, upstream, attempt, endpoint.path, payload)
    if isinstance(response, web.Response):
        return response
    try:
        async with response:
            data = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = f"{type(exc).__name__} reading {attempt.provider}"
        await settle(
            gate,
            permit,
            status="upstream_error",
            error=reason,
            usage=Usage(input_tokens=permit.input_tokens),
            usage_source="counted",
        )
        raise AttemptFailed(502, b"", {}, reason) from exc
    usage: Usage | None = None
    try:
        usage = endpoint.usage_from_response(json.loads(data))
    except ValueError:
        logger.warning("unparseable %s response from %s", endpoint.path, attempt.provider)
    receipt = await settle(gate, permit, status="ok", usage=usage, upstream_status=response.status)
    headers = passthrough_headers(response.headers)
    headers.update(success_headers(call, receipt.receipt_id, receipt.actual_usd))
    return web.Response(status=response.status, body=data, headers=headers)


async def forward_stream(
    request: web.Request,
    gate: Gate,
    upstream: Upstream,
    attempt: Attempt,
    endpoint: Endpoint,
    call: IncomingCall,
    permit: Permit,
    payload: bytes,
    *,
    per_choice_limit: int,
    n: int,
    withhold_usage: bool,
) -> web.StreamResponse:
    """A streamed call: events are forwarded as they arrive; the bill comes from the usage
    event, or from what was counted when the stream ends without one."""
    response = await request_upstream(gate, permit, upstream, attempt, endpoint.path, payload)
    if isinstance(response, web.Response):
        return response

    meter = OutputMeter(max_output_tokens=per_choice_limit, n=n)
    observe = endpoint.observe
    parser = SseParser()
    out = event_stream(call, permit)
    status: ReceiptStatus = "ok"
    error: str | None = None
    finished = False
    try:
        await out.prepare(request)
        async with response:
            async for data in response.content.iter_any():
                first_chunk()  # operator metrics: time to first token
                chunk = bytearray()
                for event in parser.feed(data):
                    payload_bytes = event.data
                    if payload_bytes is None or payload_bytes == b"[DONE]":
                        finished = finished or payload_bytes == b"[DONE]"
                        chunk += event.raw
                        continue
                    try:
                        parsed = json.loads(payload_bytes)
                    except ValueError:
                        status, error = "upstream_error", "upstream sent an unparseable event"
                        break
                    if observe is not None and not observe(meter, parsed):
                        # The upstream ignores the limit we reserved for: end the stream here.
                        status, error = "ok", "output limit reached; stream ended by aegis"
                        chunk += b"data: [DONE]\n\n"
                        finished = True
                        break
                    if withhold_usage and _is_usage_only(parsed):
                        continue
                    chunk += event.raw
                if chunk:
                    await out.write(bytes(chunk))
                if error is not None:
                    break
        # Chat streams end with [DONE]; Responses streams with a terminal event.
        if not finished and error is None and endpoint.path == "/chat/completions":
            status, error = "upstream_error", "stream ended without [DONE]"
    except asyncio.CancelledError:
        status, error = "cancelled", "client disconnected"
        await _settle_stream(gate, permit, meter, status, error)
        raise
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        status, error = "cancelled", "client disconnected"
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, error = "upstream_error", f"stream broke: {type(exc).__name__}"
    await _settle_stream(gate, permit, meter, status, error)
    if status != "cancelled":
        with suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await out.write_eof()
    return out


def worst_case(permit: Permit) -> Usage:
    """The usage the permit reserved for: what a call of unknown usage is charged."""
    return Usage(input_tokens=permit.input_tokens, output_tokens=permit.max_output_tokens)


def event_stream(call: IncomingCall, permit: Permit) -> web.StreamResponse:
    """The client's side of a stream (headers are sent before the bill is known)."""
    out = web.StreamResponse(status=200, headers=success_headers(call, permit.receipt_id, None))
    out.content_type = "text/event-stream"
    out.headers["Cache-Control"] = "no-cache"
    return out


def _is_usage_only(chunk: Any) -> bool:
    return isinstance(chunk, dict) and chunk.get("usage") is not None and not chunk.get("choices")


async def _settle_stream(
    gate: Gate, permit: Permit, meter: OutputMeter, status: ReceiptStatus, error: str | None
) -> None:
    # Once the request went upstream its input is billed, even if nothing came back: without
    # reported usage the bill is the input bound plus what was counted.
    if meter.usage is not None:
        await settle(gate, permit, status=status, usage=meter.usage, error=error)
    else:
        await settle(
            gate,
            permit,
            status=status,
            usage=meter.counted_usage(permit.input_tokens),
            usage_source="counted",
            error=error,
        )

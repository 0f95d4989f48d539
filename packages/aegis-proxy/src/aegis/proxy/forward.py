"""One upstream attempt on the wire, for every pair of APIs: send, then read the provider's
error, its answer, or pump its stream to the client.

This code records what it sees on the attempt's owner (:class:`UpstreamAttempt`) and never
settles: the owner does, once, when its block exits. Stream bytes pass through as they arrive;
the :class:`~aegis.proxy.exchange.StreamObserver` reads usage on the way (and translates when
the client's API is not the provider's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import suppress
from typing import Final

import aiohttp
from aiohttp import web

from aegis.core import SseParser
from aegis.proxy.attempt import UpstreamAttempt
from aegis.proxy.calls import IncomingCall
from aegis.proxy.exchange import Answer, Exchange, StreamObserver
from aegis.proxy.timing import first_chunk, upstream_sent
from aegis.proxy.upstream import Upstream

__all__ = [
    "UPSTREAM_REQUEST_ID",
    "Streamed",
    "forward",
    "passthrough_headers",
    "success_headers",
]

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
UPSTREAM_REQUEST_ID: Final = "x-upstream-request-id"
"""Where the provider's own request id goes (what its support asks for)."""
_CLIENT_GONE: Final = (ConnectionResetError, aiohttp.ClientConnectionResetError)


class Streamed:
    """A stream whose events were all sent; its end is sent once the attempt is settled, so
    a client that saw the end finds its receipt written."""

    __slots__ = ("response", "tail")

    def __init__(self, response: web.StreamResponse, tail: bytes | None) -> None:
        self.response = response
        self.tail = tail
        """The closing bytes (``None``: the client is gone, nothing more to send)."""

    async def finish(self) -> web.StreamResponse:
        if self.tail is not None:
            with suppress(*_CLIENT_GONE):
                if self.tail:
                    await self.response.write(self.tail)
                await self.response.write_eof()
        return self.response


def passthrough_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The provider's headers a client may see. Its ``x-request-id`` moves to
    ``x-upstream-request-id``: the client gets one ``x-request-id``, the proxy's."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower == "x-request-id":
            kept[UPSTREAM_REQUEST_ID] = value
        elif lower not in _DROP_HEADERS:
            kept[name] = value
    return kept


def success_headers(call: IncomingCall, receipt_id: str, cost_usd: str | None) -> dict[str, str]:
    headers = {"x-request-id": call.request_id, "x-aegis-receipt-id": receipt_id}
    if cost_usd is not None:
        headers["x-aegis-cost-usd"] = cost_usd
    return headers


async def forward(
    request: web.Request,
    call: IncomingCall,
    upstream: Upstream,
    exchange: Exchange,
    owner: UpstreamAttempt,
) -> tuple[Answer, Mapping[str, str]] | Streamed | None:
    """Run the attempt: its answer (with the provider's headers), the stream already being
    sent, or ``None`` when it failed (``owner.failure`` says how)."""
    name = owner.permit.provider
    upstream_sent()  # operator metrics: upstream time and fallback attempts
    owner.sent()
    try:
        headers = upstream.json_headers
        if exchange.headers:
            headers = {**headers, **exchange.headers}
        response = await upstream.session.request(
            exchange.method,
            upstream.url(exchange.path),
            data=exchange.payload or None,
            headers=headers,
        )
    except aiohttp.ClientConnectorError as exc:
        owner.unreachable(f"{type(exc).__name__} from {name}")
        return None
    except (aiohttp.ClientError, TimeoutError) as exc:
        owner.lost(
            f"{type(exc).__name__} from {name}",
            status=504 if isinstance(exc, TimeoutError) else 502,
        )
        return None
    async with response:
        if response.status >= 400:
            try:
                body = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                body = b""
            owner.refused(exchange.client_error(response.status, body, response.headers))
            return None
        if exchange.observer is None:
            try:
                raw = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                owner.lost(f"{type(exc).__name__} reading {name}")
                return None
            try:
                answer = exchange.read_answer(raw)
            except ValueError as exc:
                owner.lost(f"{name} answered {response.status} with an unreadable body: {exc}")
                return None
            owner.answered(response.status, answer.usage, answer.usage_source)
            return answer, response.headers
        if not _is_event_stream(response):
            owner.lost(f"{name} answered a stream with {response.content_type or 'no type'}")
            return None
        return await _pump(request, call, upstream, response, exchange, owner)


async def _read_abandoned(
    upstream: Upstream,
    response: aiohttp.ClientResponse,
    parser: SseParser,
    observer: StreamObserver,
    owner: UpstreamAttempt,
) -> None:
    """Read on a stream the client left, for its usage, within a bound of time and bytes.

    The provider bills what it generated (hidden reasoning included), not what the client
    saw: only its own usage figure, at the stream's end, can charge less than the reservation.
    A stream that does not get there in time is closed, and charged its reservation.
    """
    left = upstream.abandoned_read_bytes
    scratch = bytearray()  # what the client would have got: nobody reads it
    try:
        async with asyncio.timeout(upstream.abandoned_read_s):
            async for data in response.content.iter_any():
                left -= len(data)
                if left < 0:
                    return
                for event in parser.feed(data):
                    if not observer.feed(event, scratch):
                        return  # past the limit that was reserved
                scratch.clear()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return
    if observer.complete is None:
        owner.read_to_end()


def _is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return response.content_type == "text/event-stream"


async def _pump(
    request: web.Request,
    call: IncomingCall,
    upstream: Upstream,
    response: aiohttp.ClientResponse,
    exchange: Exchange,
    owner: UpstreamAttempt,
) -> Streamed:
    """Move a stream to the client event by event; the observer meters it on the way."""
    assert exchange.observer is not None
    observer: StreamObserver = exchange.observer()
    permit = owner.permit
    owner.streaming(lambda completed: observer.usage(permit.input_tokens, completed))
    out = web.StreamResponse(status=200, headers=success_headers(call, permit.receipt_id, None))
    out.content_type = exchange.stream_content_type
    out.headers["Cache-Control"] = "no-cache"
    upstream_id = response.headers.get("x-request-id")
    if upstream_id is not None:
        out.headers[UPSTREAM_REQUEST_ID] = upstream_id  # as on answers that are not streams
    parser = SseParser()
    try:
        await out.prepare(request)
        async for data in response.content.iter_any():
            first_chunk()  # operator metrics: time to first token
            chunk = bytearray()
            go_on = True
            for event in parser.feed(data):
                try:
                    go_on = observer.feed(event, chunk)
                except ValueError:
                    owner.broke(f"{permit.provider} sent an unparseable event")
                    go_on = False
                if not go_on:
                    break
            if chunk:
                await out.write(bytes(chunk))
            if not go_on:
                if owner.ending == "answered":
                    owner.stopped("output limit reached; stream ended by aegis")
                break
        else:
            missing = observer.complete
            if missing is not None:
                owner.broke(f"stream from {permit.provider} ended {missing}")
    except _CLIENT_GONE:
        owner.client_left()
        await _read_abandoned(upstream, response, parser, observer, owner)
    except asyncio.CancelledError:
        # A server with handler cancellation cancels the handler of a client that left:
        # read on all the same (shielded), then let the cancellation go on.
        owner.client_left()
        reading = asyncio.ensure_future(
            _read_abandoned(upstream, response, parser, observer, owner)
        )
        with suppress(asyncio.CancelledError):
            await asyncio.shield(reading)
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        owner.broke(f"stream broke: {type(exc).__name__}")
    if owner.ending == "cancelled":
        return Streamed(out, None)
    error = owner.error if owner.ending == "broken" else None
    tail = observer.tail(error)
    if error is not None and not tail:
        tail = exchange.client.stream_error(502, error)
    return Streamed(out, tail)

"""An upstream that fails on purpose, in one chosen way, on every OpenAI, Gemini and Anthropic
path.

Each :class:`Fault` is a way real upstreams (or what sits between them and the proxy) fail: a
200 whose body is cut, foreign or empty; a stream that stops mid-event or carries a garbage
event; an error status; a reset after the headers; no answer within the read timeout. Streams
start with one well-formed event in the provider's own dialect (OpenAI chunk, Gemini
``GenerateContentResponse`` or Anthropic ``message_start``), so a failure lands after the client
has seen data. Error bodies are in the provider's shape too (OpenAI's, google.rpc's,
Anthropic's ``{"type": "error", "error": {type, message}}``).
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from types import TracebackType
from typing import Final

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["Fault", "FaultyUpstream"]


class Fault(Enum):
    INVALID_JSON = "200 + invalid JSON"
    WRONG_CONTENT_TYPE = "200 + text/html"
    EMPTY_BODY = "200 + empty body"
    SSE_CUT = "SSE that stops mid-event"
    SSE_GARBAGE = "SSE with a garbage event"
    SERVER_ERROR = "500"
    RATE_LIMITED = "429 with retry-after"
    RESET_AFTER_HEADERS = "reset after headers"
    READ_TIMEOUT = "read timeout"
    STALL = "stalls (for a client that leaves)"


_OPENAI_CHUNK: Final = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
    b'"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":"Hel"},"finish_reason":null}]}\n\n'
)
_RESPONSES_EVENT: Final = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hel"}\n\n'
)
_GEMINI_CHUNK: Final = (
    b'data: {"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],'
    b'"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1,"totalTokenCount":5},'
    b'"modelVersion":"gemini-2.5-flash"}\r\n\r\n'
)

_ANTHROPIC_EVENT: Final = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    b'"type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],'
    b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":4,"output_tokens":1}}}'
    b"\n\n"
)


def _is_anthropic(path: str) -> bool:
    return path.startswith("/v1/messages")


def _first_event(path: str) -> bytes:
    if ":streamGenerateContent" in path:
        return _GEMINI_CHUNK
    if _is_anthropic(path):
        return _ANTHROPIC_EVENT
    return _RESPONSES_EVENT if path.endswith("/responses") else _OPENAI_CHUNK


def _error_body(path: str, status: int, message: str) -> bytes:
    if _is_anthropic(path):
        kinds = {429: "rate_limit_error", 500: "api_error"}
        return json.dumps(
            {"type": "error", "error": {"type": kinds[status], "message": message}}
        ).encode()
    if "/models/" in path and ":" in path:  # Gemini's google.rpc.Status shape
        names = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
        error = {"code": status, "message": message, "status": names[status]}
    else:
        error = {"message": message, "type": "server_error", "param": None, "code": None}
    return json.dumps({"error": error}).encode()


class FaultyUpstream:
    """Serves ``fault`` on every POST; ``requests`` counts what arrived."""

    def __init__(self) -> None:
        self.fault = Fault.SERVER_ERROR
        self.requests = 0
        self.stall_s = 5.0
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    async def __aenter__(self) -> FaultyUpstream:
        await self._server.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        path = request.path
        stream = ":streamGenerateContent" in path or b'"stream":true' in body.replace(b" ", b"")
        fault = self.fault
        if fault is Fault.INVALID_JSON:
            return web.Response(body=b'{"id": "x", "choices": [{"index": 0, "mess', headers=_JSON)
        if fault is Fault.WRONG_CONTENT_TYPE:
            return web.Response(body=b"<html>Bad gateway</html>", content_type="text/html")
        if fault is Fault.EMPTY_BODY:
            return web.Response(body=b"", headers=_JSON)
        if fault is Fault.SERVER_ERROR:
            return web.Response(status=500, body=_error_body(path, 500, "boom"), headers=_JSON)
        if fault is Fault.RATE_LIMITED:
            return web.Response(
                status=429,
                body=_error_body(path, 429, "slow down"),
                headers={**_JSON, "retry-after": "7"},
            )
        if fault in (Fault.READ_TIMEOUT, Fault.STALL) and not stream:
            await asyncio.sleep(self.stall_s)
            return web.Response(body=b"{}", headers=_JSON)
        if fault is Fault.RESET_AFTER_HEADERS and not stream:
            response = web.StreamResponse(headers={**_JSON, "Content-Length": "4000"})
            await response.prepare(request)
            await response.write(b'{"id": "x", ')
            _abort(request)
            return response
        # Streamed faults: one good event first.
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_first_event(path))
        if fault is Fault.SSE_CUT:
            await response.write(b'data: {"id":"chatcmpl-1","choi')
            _abort(request)
        elif fault is Fault.SSE_GARBAGE:
            await response.write(b"data: {this is not json\n\n")
            await response.write(_first_event(path))
        elif fault is Fault.RESET_AFTER_HEADERS:
            _abort(request)
        else:  # a stream that goes quiet
            await asyncio.sleep(self.stall_s)
        return response


_JSON: Final = {"Content-Type": "application/json"}


def _abort(request: web.Request) -> None:
    assert request.transport is not None
    request.transport.abort()

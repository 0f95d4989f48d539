"""An instant OpenAI-compatible upstream for the proxy benchmark.

Raw asyncio, canned bytes: it does as little work per call as a server can in Python, so
what a benchmark measures through the proxy is the proxy. Chat completions only:

- a body without ``"stream":true`` gets one canned ``chat.completion`` (Content-Length);
- a streamed body gets ``STREAM_EVENTS`` chunk events (the last one carrying usage) and
  ``[DONE]``, each event in its own HTTP chunk, all written at once;
- a streamed body that contains ``bench-slow`` gets its first event at once, then one event a
  second until ``SLOW_EVENTS`` were sent (for holding many open streams).

Run: ``python -m bench._upstream PORT``; it prints ``ready`` once it listens.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from contextlib import suppress
from typing import Any, Final

MODEL: Final = "gpt-4o-mini"
STREAM_EVENTS: Final = 24
SLOW_EVENTS: Final = 8
SLOW_INTERVAL_S: Final = 1.0

_USAGE: Final = {"prompt_tokens": 12, "completion_tokens": 22, "total_tokens": 34}


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def completion_body() -> bytes:
    """The canned non-streamed answer."""
    return _json(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
        }
    )


def stream_events(count: int) -> list[bytes]:
    """``count`` SSE events (role, words, finish with usage) followed by ``[DONE]``."""

    def chunk(delta: dict[str, str], finish: str | None, usage: object = None) -> bytes:
        obj: dict[str, object] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            obj["choices"] = []
            obj["usage"] = usage
        return b"data: " + _json(obj) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": f"w{i} "}, None) for i in range(count - 3)]
    events.append(chunk({}, "stop"))
    events.append(chunk({}, None, _USAGE))
    events.append(b"data: [DONE]\n\n")
    return events


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_JSON_BODY: Final = completion_body()
_JSON_REPLY: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    % len(_JSON_BODY)
    + _JSON_BODY
)
_SSE_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
_SSE_CHUNKS: Final = [_http_chunk(e) for e in stream_events(STREAM_EVENTS)]
_SLOW_CHUNKS: Final = [_http_chunk(e) for e in stream_events(SLOW_EVENTS)]
_END: Final = b"0\r\n\r\n"
_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)


def _content_length(head: bytes) -> int:
    i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    j = head.find(b"\r\n", i + 2)
    return int(head[i + 17 : j if j >= 0 else len(head)])


class _Server(asyncio.Protocol):
    __slots__ = ("_buf", "_sock", "_transport")

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._sock: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        if _QUICKACK is not None and self._sock is not None:
            # A client that writes headers and body apart without TCP_NODELAY would otherwise
            # wait ~40 ms for our delayed ACK (Nagle): a stall of the client's making that
            # no gateway should be charged with.
            with suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        buf = self._buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            length = _content_length(head)
            if len(buf) < end + 4 + length:
                break
            body = buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length :]
            self._answer(body)
        self._buf = buf

    def _answer(self, body: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if b'"stream":true' not in body and b'"stream": true' not in body:
            transport.write(_JSON_REPLY)
        elif b"bench-slow" in body:
            asyncio.get_running_loop().create_task(_slow(transport))
        else:
            transport.write(_SSE_HEAD)
            for chunk in _SSE_CHUNKS:
                transport.write(chunk)
            transport.write(_END)


async def _slow(transport: asyncio.Transport) -> None:
    transport.write(_SSE_HEAD)
    for i, chunk in enumerate(_SLOW_CHUNKS):
        if i:
            await asyncio.sleep(SLOW_INTERVAL_S)
        if transport.is_closing():
            return
        transport.write(chunk)
    transport.write(_END)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

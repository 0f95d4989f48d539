"""A lean HTTP/1.1 load generator: keep-alive connections, prebuilt request bytes, raw asyncio.

An aiohttp client spends more CPU per call than the proxy should, and it shares a core with
the upstream here; parsing only what a benchmark needs keeps the generator out of the way
(the direct-upstream baseline, measured the same way, shows its own cost).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Answer", "Connection", "Run", "closed_loop", "request_bytes"]

_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)


def request_bytes(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST, ready to write."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass(slots=True)
class Answer:
    """One response as the client saw it (times in ns from sending the request)."""

    status: int
    body: bytes
    first_byte_ns: int
    total_ns: int


class _Protocol(asyncio.Protocol):
    """Parses one response at a time: Content-Length or chunked bodies."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._sock: Any = None
        self.waiter: asyncio.Future[Answer] | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._status = 0
        self._length = -1  # -1: headers not read yet; -2: chunked
        self._body = bytearray()
        self._sent_ns = 0
        self._first_ns = 0

    def start(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self._sent_ns = time.perf_counter_ns()
        self.transport.write(data)
        return self.waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._sock = transport.get_extra_info("socket")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("connection closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if _QUICKACK is not None and self._sock is not None:
            # A server that writes a response in pieces without TCP_NODELAY would otherwise
            # wait for our delayed ACK (~40 ms, Nagle), a stall no real client would blame on
            # the server's work: measure the work.
            with suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        buf = self._buf
        buf += data
        if self._length == -1:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            self._status = int(head[9:12])
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                self._length = int(head[i + 17 : j if j >= 0 else len(head)])
            elif b"transfer-encoding: chunked" in head:
                self._length = -2
            else:
                raise ValueError("the load generator reads only sized or chunked bodies")
            del buf[: end + 4]
        if buf and not self._first_ns:
            self._first_ns = time.perf_counter_ns()
        if self._length >= 0:
            if len(buf) >= self._length:
                self._body = buf[: self._length]
                self._done()
            return
        while True:
            eol = buf.find(b"\r\n")
            if eol < 0:
                return
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
            if len(buf) < eol + 2 + size + 2:
                return
            if size == 0:
                self._done()
                return
            self._body += buf[eol + 2 : eol + 2 + size]
            del buf[: eol + 2 + size + 2]

    def _done(self) -> None:
        now = time.perf_counter_ns()
        answer = Answer(
            self._status, bytes(self._body), self._first_ns - self._sent_ns, now - self._sent_ns
        )
        waiter = self.waiter
        self._reset()
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)


class Connection:
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(cls, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, "127.0.0.1", port)
        return cls(protocol)

    async def call(self, data: bytes) -> Answer:
        return await self._protocol.start(data)

    def close(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.close()


@dataclass(slots=True)
class Run:
    """What one closed-loop run measured."""

    elapsed_s: float
    latencies_ns: list[int] = field(default_factory=list)
    first_bytes_ns: list[int] = field(default_factory=list)
    errors: int = 0
    last_error: str = ""

    @property
    def calls_per_s(self) -> float:
        return len(self.latencies_ns) / self.elapsed_s if self.elapsed_s else 0.0


async def closed_loop(
    port: int, requests: Sequence[bytes], *, concurrency: int, duration_s: float
) -> Run:
    """``concurrency`` workers, each on its own connection, calling back to back for
    ``duration_s``; requests are taken in turn from ``requests``."""
    conns = [await Connection.open(port) for _ in range(concurrency)]
    run = Run(elapsed_s=0.0)
    counter = 0
    start = time.perf_counter()
    deadline = start + duration_s

    async def worker(conn: Connection) -> None:
        nonlocal counter
        n = len(requests)
        while time.perf_counter() < deadline:
            data = requests[counter % n]
            counter += 1
            answer = await conn.call(data)
            if answer.status != 200:
                run.errors += 1
                run.last_error = f"{answer.status} {answer.body[:200]!r}"
                continue
            run.latencies_ns.append(answer.total_ns)
            run.first_bytes_ns.append(answer.first_byte_ns)

    try:
        await asyncio.gather(*(worker(c) for c in conns))
    finally:
        run.elapsed_s = time.perf_counter() - start
        for c in conns:
            c.close()
    return run

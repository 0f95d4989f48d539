"""Connections bounded before any of them reaches the app: per client, in total, and in time.

A client that opens connections and never finishes a request (slowloris) must not use up the
process's file descriptors, or every legitimate call fails too. The guard wraps each accepted
connection's protocol:

- beyond ``max_connections`` in total, or ``max_per_client`` from one address, a new
  connection is closed at once (before aiohttp allocates anything for it);
- a connection whose first request's headers are not complete after ``header_timeout_s`` is
  closed (aiohttp's keep-alive timeout covers idle connections after that);
- refused connections are logged at most once a second, as a count, so a flood cannot fill the
  disk with log lines.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web

__all__ = ["ConnectionGuard", "GuardLimits", "GuardedSite", "default_max_connections"]

logger = logging.getLogger(__name__)

_FD_RESERVE: Final = 128
"""Descriptors kept for what the proxy itself opens: upstreams, ledger, trail, logs."""


def default_max_connections() -> int:
    """What the descriptor limit allows, less a reserve for the proxy's own files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65_536
    return max(16, soft - _FD_RESERVE) if soft > 2 * _FD_RESERVE else max(16, soft // 2)


@dataclass(frozen=True, slots=True)
class GuardLimits:
    max_connections: int
    max_per_client: int
    """``0``: no bound per address (behind a load balancer every client has its address)."""
    header_timeout_s: float


class ConnectionGuard:
    """Counts open connections and refuses the ones beyond the limits."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.open = 0
        self.by_client: dict[str, int] = {}
        self.refused = 0
        self.timed_out = 0
        self._unlogged = 0
        self._logged_at = 0.0

    def admit(self, client: str) -> bool:
        limits = self.limits
        held = self.by_client.get(client, 0)
        if self.open >= limits.max_connections or (
            limits.max_per_client and held >= limits.max_per_client
        ):
            self.refused += 1
            self._unlogged += 1
            now = time.monotonic()
            if now - self._logged_at >= 1.0:
                logger.warning(
                    "refused %d connection(s) over the limits (%d open, %d from %s)",
                    self._unlogged,
                    self.open,
                    held,
                    client,
                )
                self._unlogged, self._logged_at = 0, now
            return False
        self.open += 1
        self.by_client[client] = held + 1
        return True

    def release(self, client: str) -> None:
        self.open -= 1
        held = self.by_client.get(client, 1) - 1
        if held:
            self.by_client[client] = held
        else:
            self.by_client.pop(client, None)

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        def make() -> asyncio.Protocol:
            return _Guarded(self, inner)

        return make


class _Guarded(asyncio.Protocol):
    """One connection: admitted or closed, then handed to aiohttp's own protocol."""

    __slots__ = ("_client", "_deadline", "_guard", "_headers_done", "_inner", "_make", "_seen")

    def __init__(self, guard: ConnectionGuard, make: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._client = ""
        self._deadline: asyncio.TimerHandle | None = None
        self._headers_done = False
        self._seen = b""

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        # A TCP server's transport (uvloop's is not an asyncio.Transport subclass).
        transport = cast(asyncio.Transport, base)
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._guard.admit(self._client):
            self._client = ""
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(
            self._guard.limits.header_timeout_s, self._too_slow, transport
        )
        self._inner = self._make()
        self._inner.connection_made(transport)

    def _too_slow(self, transport: asyncio.Transport) -> None:
        if not self._headers_done:
            self._guard.timed_out += 1
            transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._headers_done:
            # Only the first request's headers are watched: a short tail of what came before
            # is enough to see their blank line, however the bytes were split.
            window = self._seen + data
            if b"\r\n\r\n" in window:
                self._headers_done = True
                if self._deadline is not None:
                    self._deadline.cancel()
                self._seen = b""
            else:
                self._seen = window[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._inner is None else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        if self._client:
            self._guard.release(self._client)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass the guard first."""

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(runner, **kwargs)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self.guard.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )

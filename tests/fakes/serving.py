"""What every fake upstream shares: serving its aiohttp app on a local port, in this process
or as a process of its own (``python -m fakes.<name> --port N``)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Self

from aiohttp import web

__all__ = ["LocalServer", "run_cli"]


class LocalServer:
    """An app served on ``host:port`` (``port=0``: a free one) until closed."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the provider's SDK takes as ``base_url`` (the root, unless a fake says)."""
        return self.url

    async def start(self) -> str:
        """Start serving; returns :attr:`base_url`."""
        # In-flight requests (a scripted delay) must not hold up a test's teardown.
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self.base_url

    async def close(self) -> None:
        """Stop serving and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _serve(server: LocalServer) -> None:
    await server.start()
    # The parent process reads this line to learn the port.
    sys.stdout.write(f"listening on {server.base_url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def run_cli(
    description: str, make: Callable[[str, int], LocalServer], argv: Sequence[str] | None
) -> None:
    """``--host H --port N``: serve ``make(host, port)`` until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(_serve(make(args.host, args.port)))

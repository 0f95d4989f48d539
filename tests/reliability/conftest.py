from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import UPSTREAM_SECRET, Proxy

from aegis.proxy import Settings, create_app

RECEIPT_SECRET = "receipt-secret-canary-0123456789"


@pytest.fixture
async def openai_upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def start_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[[Settings], Awaitable[Proxy]]]:
    monkeypatch.setenv("FAKE_KEY", UPSTREAM_SECRET)
    monkeypatch.setenv("AEGIS_RECEIPT_SECRET", RECEIPT_SECRET)
    proxies: list[Proxy] = []

    async def start(settings: Settings) -> Proxy:
        server = TestServer(create_app(settings))
        await server.start_server()
        proxies.append(Proxy(server))
        return proxies[-1]

    yield start
    for proxy in proxies:
        await proxy.close()

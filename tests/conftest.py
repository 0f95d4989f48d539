"""Fixtures shared by every test area: a manual clock, the fake upstreams, the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestServer
from fakes.anthropic_upstream import FakeAnthropic, FakeAnthropicServer
from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream
from fakes.postgres_server import PostgresServer
from fakes.proxy_harness import UPSTREAM_SECRET, Proxy

from aegis.core import ManualClock
from aegis.proxy import Settings, create_app

RECEIPT_SECRET = "receipt-secret-canary-0123456789"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session, started on first use (each test makes its
    own database with ``fresh_database``); a missing server fails the test, never skips it."""
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def clock() -> ManualClock:
    """A clock at 2026-11-26 12:00:00 UTC that moves only when told."""
    return ManualClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))


@pytest.fixture
async def openai_upstream() -> AsyncIterator[FakeUpstream]:
    """The fake OpenAI upstream on a free port."""
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def backup_upstream() -> AsyncIterator[FakeUpstream]:
    """A second fake OpenAI upstream, for fallbacks."""
    async with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
async def gemini_upstream() -> AsyncIterator[FakeGeminiServer]:
    """The fake Gemini upstream on a free port."""
    async with FakeGeminiServer() as upstream:
        yield upstream


@pytest.fixture
async def anthropic_upstream() -> AsyncIterator[FakeAnthropicServer]:
    """The fake Anthropic upstream on a free port; it accepts only the provider key the proxy
    is given (``UPSTREAM_SECRET``)."""
    async with FakeAnthropicServer(FakeAnthropic(api_key=UPSTREAM_SECRET)) as upstream:
        yield upstream


@pytest.fixture
async def start_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Callable[[Settings], Awaitable[Proxy]]]:
    """Serve the proxy app for given settings on a free port (closed after the test), with the
    upstream key (``FAKE_KEY``) and the receipt secret set to canaries."""
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

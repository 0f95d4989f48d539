from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import UPSTREAM_SECRET, Proxy, make_settings
from prometheus_client.parser import text_string_to_metric_families

from aegis.proxy import AdminSettings, ObservabilitySettings, Settings, create_app, hash_key

ADMIN_KEY = "aegis-sk-test-admin-key-0123456789"
METRICS_KEY = "aegis-sk-test-metrics-key-0123456789"
"""The scraper's key: /metrics is closed without one."""
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def admin_key() -> str:
    return ADMIN_KEY


def operator_settings(
    tmp_path: Path,
    upstream: FakeUpstream,
    backup: FakeUpstream | None = None,
    *,
    gemini: FakeGeminiServer | None = None,
    receipts: str = "memory",
    observability: dict[str, Any] | None = None,
    trust_tenant_header: bool = False,
    serve_any_model: bool = False,
    **acme: Any,
) -> Settings:
    """The proxy harness's settings (tenants acme and beta) plus an admin key;
    ``serve_any_model``: the openai provider claims every model name (as a vLLM might)."""
    settings = make_settings(tmp_path, upstream, backup, gemini, receipts=receipts, **acme)
    providers = dict(settings.providers)
    if serve_any_model:
        providers["openai"] = dataclasses.replace(providers["openai"], models=("*",))
    return dataclasses.replace(
        settings,
        providers=providers,
        admin=AdminSettings(api_keys=(hash_key(ADMIN_KEY),)),
        observability=ObservabilitySettings(
            **{"metrics_keys": (hash_key(METRICS_KEY),), **(observability or {})}
        ),
        auth=dataclasses.replace(settings.auth, trust_tenant_header=trust_tenant_header),
    )


@pytest.fixture
def settings_for() -> Callable[..., Settings]:
    return operator_settings


StartApp = Callable[[web.Application], Awaitable[Proxy]]


@pytest.fixture
async def start_app(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartApp]:
    """Serve an app built by the test (so it can set app keys before startup)."""
    monkeypatch.setenv("FAKE_KEY", UPSTREAM_SECRET)
    monkeypatch.setenv("AEGIS_RECEIPT_SECRET", "receipt-secret-canary-0123456789")
    proxies: list[Proxy] = []

    async def start(app: web.Application) -> Proxy:
        server = TestServer(app)
        await server.start_server()
        proxies.append(Proxy(server))
        return proxies[-1]

    yield start
    for proxy in proxies:
        await proxy.close()


@pytest.fixture
def start_proxy(start_app: StartApp) -> Callable[[Settings], Awaitable[Proxy]]:
    async def start(settings: Settings) -> Proxy:
        return await start_app(create_app(settings))

    return start


async def scrape_metrics(proxy: Proxy) -> Samples:
    """Every sample of ``GET /metrics``, keyed by sample name and label set."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            proxy.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


@pytest.fixture
def scrape() -> Callable[[Proxy], Awaitable[Samples]]:
    return scrape_metrics


async def http_get(
    proxy: Proxy, path: str, key: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET ``path`` with ``key`` as the bearer token: (status, parsed JSON body)."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as http, http.get(proxy.url + path, headers=sent) as r:
        return r.status, await r.json(content_type=None)


@pytest.fixture
def get_json() -> Callable[..., Awaitable[tuple[int, Any]]]:
    return http_get

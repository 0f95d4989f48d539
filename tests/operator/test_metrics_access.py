"""``GET /metrics`` is closed by default: a metrics key of its own, or a separate listener."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY, Proxy

from aegis.proxy import ObservabilitySettings, Settings

ADMIN_KEY = "aegis-sk-test-admin-key-0123456789"  # as tests/operator/conftest.py sets
METRICS_KEY = "aegis-sk-test-metrics-key-0123456789"

StartProxy = Callable[[Settings], Awaitable[Proxy]]


async def _get(url: str, key: str | None = None) -> tuple[int, str]:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.text()


async def test_only_a_metrics_key_reads_metrics(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
) -> None:
    proxy = await start_proxy(settings_for(tmp_path, openai_upstream))
    for key in (None, KEY, ADMIN_KEY, METRICS_KEY + "x"):
        status, body = await _get(proxy.url + "/metrics", key)
        assert status == 401, key
        assert "acme" not in body
        assert "aegis_" not in body
    status, body = await _get(proxy.url + "/metrics", METRICS_KEY)
    assert status == 200
    assert "# TYPE aegis_requests_total" in body


async def test_closed_when_no_metrics_key_is_configured(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
) -> None:
    settings = settings_for(tmp_path, openai_upstream)
    settings = dataclasses.replace(settings, observability=ObservabilitySettings())
    proxy = await start_proxy(settings)
    status, body = await _get(proxy.url + "/metrics", METRICS_KEY)
    assert status == 401
    assert "metrics_keys" in body
    assert "acme" not in body


async def test_a_separate_listener_serves_metrics_alone(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(tmp_path, openai_upstream)
    settings = dataclasses.replace(
        settings, observability=ObservabilitySettings(metrics_listen=f"127.0.0.1:{port}")
    )
    proxy = await start_proxy(settings)
    status, body = await _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert "# TYPE aegis_requests_total" in body
    status, _ = await _get(f"http://127.0.0.1:{port}/v1/models", KEY)
    assert status == 404  # nothing else there
    status, _ = await _get(proxy.url + "/metrics")
    assert status == 401  # and still closed on the main listener

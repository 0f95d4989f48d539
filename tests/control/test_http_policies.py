"""``[policies] url``: policies from an operator's HTTP API, against a real local policy server
that is slow, down and changing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import Proxy

from aegis.core import Policy, StoreUnavailable
from aegis.proxy import AuthSettings, Settings
from aegis.proxy.config import PolicySourceSettings
from aegis.proxy.http_policies import HttpPolicyProvider

StartProxy = Callable[[Settings], Awaitable[Proxy]]


def policy_body(day_usd: str) -> dict[str, Any]:
    return {
        "budgets": {"per_window": [{"window": "day", "limit_usd": day_usd}]},
        "model": {"allow_models": ["gpt-4o*"]},
    }


class PolicyServer:
    """The operator's policy API: answers what ``policies`` holds, after ``delay_s``."""

    def __init__(self) -> None:
        self.policies: dict[str, Any] = {"acme-co": policy_body("5")}
        self.delay_s = 0.0
        self.status: int | None = None
        self.hits = 0
        self.auth: list[str | None] = []
        app = web.Application()
        app.router.add_get("/tenants/{tenant_id}", self.handle)
        self.server = TestServer(app)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.auth.append(request.headers.get("Authorization"))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status is not None:
            return web.Response(status=self.status, text="oops")
        body = self.policies.get(request.match_info["tenant_id"])
        if body is None:
            return web.json_response({"error": "no such tenant"}, status=404)
        return web.json_response(body)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/tenants/")) + "{tenant_id}"


@pytest.fixture
async def policy_server() -> AsyncIterator[PolicyServer]:
    server = PolicyServer()
    await server.server.start_server()
    yield server
    await server.server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(server: PolicyServer, clock: Clock, **settings: Any) -> HttpPolicyProvider:
    defaults: dict[str, Any] = {"url": server.url, "ttl_s": 10.0, "stale_s": 60.0, "timeout_s": 0.5}
    return HttpPolicyProvider(PolicySourceSettings(**{**defaults, **settings}), monotonic=clock)


async def settled() -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)


async def test_fetch_cache_and_version(
    policy_server: PolicyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICY_TOKEN", "policy-token-canary")
    clock = Clock()
    source = provider(policy_server, clock, token_env="POLICY_TOKEN")
    try:
        got = await source.get_policy(tenant_id="acme-co")
        assert got == Policy.from_dict("acme-co", policy_body("5"))
        assert got is not None
        assert got.version == Policy.from_dict("acme-co", policy_body("5")).version
        assert await source.get_policy(tenant_id="acme-co") is got
        assert policy_server.hits == 1  # the second came from the cache
        assert policy_server.auth == ["Bearer policy-token-canary"]
        assert await source.get_policy(tenant_id="nobody") is None  # 404: unknown tenant
    finally:
        await source.close()


async def test_a_changing_policy_is_served_stale_while_it_revalidates(
    policy_server: PolicyServer,
) -> None:
    clock = Clock()
    source = provider(policy_server, clock)
    try:
        first = await source.get_policy(tenant_id="acme-co")
        policy_server.policies["acme-co"] = policy_body("1")
        clock.now += 5  # within the TTL: still the cached one, no request
        assert await source.get_policy(tenant_id="acme-co") is first
        assert policy_server.hits == 1
        clock.now += 10  # past the TTL: the stale one at once, a refresh behind it
        policy_server.delay_s = 0.2
        started = time.monotonic()
        assert await source.get_policy(tenant_id="acme-co") is first
        assert time.monotonic() - started < 0.1
        await asyncio.sleep(0.4)
        changed = await source.get_policy(tenant_id="acme-co")
        assert changed is not None
        assert changed.per_window[0].limit_nanos == 10**9
        assert policy_server.hits == 2  # one refresh, not one per call
    finally:
        await source.close()


async def test_down_and_cold_fails_closed_warm_serves_within_the_stale_window(
    policy_server: PolicyServer,
) -> None:
    clock = Clock()
    source = provider(policy_server, clock)
    try:
        await source.get_policy(tenant_id="acme-co")
        await policy_server.server.close()  # the API goes down
        with pytest.raises(StoreUnavailable):
            await source.get_policy(tenant_id="other-co")  # cold: refused
        clock.now += 30  # stale but within stale_s: still served, refresh fails quietly
        assert await source.get_policy(tenant_id="acme-co") is not None
        await settled()
        clock.now += 60  # past ttl + stale: nothing to trust, refused
        with pytest.raises(StoreUnavailable):
            await source.get_policy(tenant_id="acme-co")
    finally:
        await source.close()


async def test_slow_or_broken_answers_fail_closed(policy_server: PolicyServer) -> None:
    clock = Clock()
    source = provider(policy_server, clock)
    try:
        policy_server.delay_s = 2.0
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await source.get_policy(tenant_id="acme-co")
        assert time.monotonic() - started < 1.5  # gave up at timeout_s
        policy_server.delay_s = 0
        for status in (500, 503, 302):
            policy_server.status = status
            with pytest.raises(StoreUnavailable):
                await source.get_policy(tenant_id="acme-co")
        policy_server.status = None
        policy_server.policies["acme-co"] = {"budgets": {"per_window": [{"window": "week"}]}}
        with pytest.raises(StoreUnavailable, match="invalid policy"):
            await source.get_policy(tenant_id="acme-co")
        # A good policy cached, then a bad one: the good one stays until its window ends.
        policy_server.policies["acme-co"] = policy_body("5")
        good = await source.get_policy(tenant_id="acme-co")
        policy_server.policies["acme-co"] = ["not", "an", "object"]
        clock.now += 11
        assert await source.get_policy(tenant_id="acme-co") is good
        await settled()
        assert await source.get_policy(tenant_id="acme-co") is good
    finally:
        await source.close()


async def test_through_the_proxy(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    policy_server: PolicyServer,
) -> None:
    settings = settings_for(tmp_path, openai_upstream)
    settings = dataclasses.replace(
        settings,
        auth=AuthSettings(trust_tenant_header=True),
        policies=PolicySourceSettings(url=policy_server.url, ttl_s=0.3, stale_s=0, timeout_s=1),
    )
    proxy = await start_proxy(settings)

    async def status(tenant: str, model: str = "gpt-4o-mini") -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                proxy.url + "/v1/chat/completions",
                headers={"x-tenant-id": tenant},
                json={
                    "model": model,
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 5,
                },
            ) as response,
        ):
            return response.status

    assert await status("acme-co") == 200
    assert await status("acme-co", "o3") == 403  # the API's policy allows gpt-4o* only
    assert await status("nobody") == 403  # 404 from the API: unknown tenant, denied
    policy_server.policies["acme-co"] = policy_body("0.000001")
    await asyncio.sleep(0.4)
    assert await status("acme-co") == 429  # the changed policy is in force
    await policy_server.server.close()
    await asyncio.sleep(0.4)
    assert await status("acme-co") == 503  # down and nothing fresh: refused

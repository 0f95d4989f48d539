from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY, OTHER_KEY, Proxy

from aegis.proxy import AdminSettings, Settings, apply_settings, hash_key, parse_settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
GetJson = Callable[..., Awaitable[tuple[int, Any]]]

ADMIN_GETS = (
    "/admin/tenants",
    "/admin/tenants/acme",
    "/admin/tenants/beta",
    "/admin/usage",
    "/admin/usage/acme",
    "/admin/usage/beta",
    "/admin/receipts",
    "/admin/receipts?tenant=beta",
    "/admin/verify",
)
ADMIN_POSTS = ("/admin/verify",)


async def _request(proxy: Proxy, method: str, path: str, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, proxy.url + path, headers=headers) as response,
    ):
        await response.read()
        return response.status


async def _traffic(proxy: Proxy) -> None:
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    await proxy.client().chat.completions.create(model="gpt-4o-mini", messages=hi, max_tokens=30)
    await proxy.client().chat.completions.create(model="gpt-4o", messages=hi, max_tokens=30)
    with pytest.raises(openai.RateLimitError):
        await proxy.client().chat.completions.create(model="gpt-4o", messages=hi, max_tokens=9000)
    await proxy.client(OTHER_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=hi, max_tokens=10
    )


@pytest.fixture
async def proxy(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
) -> Proxy:
    settings = settings_for(
        tmp_path,
        openai_upstream,
        receipts="file",
        trust_tenant_header=True,
        budgets={"per_window": [{"window": "day", "limit_usd": "0.02"}]},
    )
    started = await start_proxy(settings)
    await _traffic(started)
    return started


async def test_every_admin_route_refuses_tenant_keys_and_strangers(
    proxy: Proxy, admin_key: str
) -> None:
    for method, paths in (("GET", ADMIN_GETS), ("POST", ADMIN_POSTS)):
        for path in paths:
            for key in (KEY, OTHER_KEY):
                tenant = {"Authorization": f"Bearer {key}"}
                assert await _request(proxy, method, path, tenant) == 403, (path, key)
                google_style = {"x-goog-api-key": key}
                assert await _request(proxy, method, path, google_style) == 403, path
            assert await _request(proxy, method, path, {}) == 401, path
            wrong = {"Authorization": "Bearer aegis-sk-not-a-key"}
            assert await _request(proxy, method, path, wrong) == 401, path
            # A trusted x-tenant-id names a tenant; it never makes anyone an admin.
            assert await _request(proxy, method, path, {"x-tenant-id": "acme"}) == 401, path
            admin = {"Authorization": f"Bearer {admin_key}"}
            assert await _request(proxy, method, path, admin) == 200, path


async def test_a_tenant_reads_its_own_usage_and_nothing_else(
    proxy: Proxy, get_json: GetJson, admin_key: str
) -> None:
    for key, own, other in ((KEY, "acme", "beta"), (OTHER_KEY, "beta", "acme")):
        status, body = await get_json(proxy, "/v1/aegis/usage", key)
        assert status == 200
        assert body["tenant_id"] == own
        assert other not in json.dumps(body)
        status, body = await get_json(proxy, f"/v1/aegis/usage/{own}", key)
        assert (status, body["tenant_id"]) == (200, own)
        for path in (
            f"/v1/aegis/usage/{other}",
            f"/v1/aegis/usage?tenant={other}",
            f"/v1/aegis/usage/{own}?tenant={other}",
            "/v1/aegis/usage/nobody",
        ):
            status, body = await get_json(proxy, path, key)
            assert status == 403, path
            assert body["error"]["type"] == "permission_error"
            assert other not in json.dumps(body)
    for path in ("/v1/aegis/usage", "/v1/aegis/usage/acme"):
        status, _ = await get_json(proxy, path)
        assert status == 401
    # An admin key is not a tenant key.
    status, _ = await get_json(proxy, "/v1/aegis/usage", admin_key)
    assert status == 401


async def test_tenant_usage_is_the_ledger_and_the_receipts(
    proxy: Proxy, get_json: GetJson, admin_key: str
) -> None:
    status, receipts = await get_json(proxy, "/admin/receipts?tenant=acme&limit=1000", admin_key)
    assert status == 200
    acme = receipts["receipts"]
    assert [r["status"] for r in reversed(acme)] == ["ok", "ok", "denied"]
    charged = sum(Decimal(r["actual_usd"]) for r in acme)
    status, mine = await get_json(proxy, "/v1/aegis/usage", KEY)
    status, theirs = await get_json(proxy, "/admin/usage/acme", admin_key)
    assert mine["budgets"] == theirs["budgets"]
    (day,) = mine["budgets"]
    assert day["budget"] == "day"
    assert Decimal(day["spent_usd"]) == charged
    assert Decimal(day["reserved_usd"]) == 0
    assert Decimal(day["remaining_usd"]) == Decimal("0.02") - charged
    since = mine["since_start"]
    assert since["requests"] == 3
    assert since["outcomes"] == {"ok": 2, "denied": 1}
    assert since["denials"] == {"day": 1}
    assert Decimal(since["spend_usd"]) == charged
    assert {m["model"] for m in since["models"]} == {"gpt-4o", "gpt-4o-mini"}
    assert sum(Decimal(p["spend_usd"]) for p in since["timeline"]) == charged
    status, everyone = await get_json(proxy, "/admin/usage", admin_key)
    # The most spend since the start first, a page at a time.
    assert [t["tenant_id"] for t in everyone["tenants"]] == ["acme", "beta"]
    assert everyone["total"] == 2
    _, first = await get_json(proxy, "/admin/usage?limit=1", admin_key)
    _, second = await get_json(proxy, "/admin/usage?limit=1&offset=1", admin_key)
    assert [t["tenant_id"] for t in first["tenants"] + second["tenants"]] == ["acme", "beta"]
    status, _ = await get_json(proxy, "/admin/usage?limit=0", admin_key)
    assert status == 400


async def test_tenants_are_listed_with_policies_and_without_key_hashes(
    proxy: Proxy, get_json: GetJson, admin_key: str
) -> None:
    status, body = await get_json(proxy, "/admin/tenants", admin_key)
    assert status == 200
    text = json.dumps(body)
    for key in (KEY, OTHER_KEY, admin_key):
        assert hash_key(key) not in text
        assert hash_key(key).removeprefix("sha256:") not in text
        assert key not in text
    acme, beta = body["tenants"]
    assert (acme["tenant_id"], acme["api_keys"]) == ("acme", 1)
    assert acme["policy"]["budgets"]["per_window"] == [
        {"window": "day", "limit_usd": "0.02", "hard_stop": True}
    ]
    assert beta["tenant_id"] == "beta"
    assert body["total"] == 2
    _, page = await get_json(proxy, "/admin/tenants?offset=1", admin_key)
    assert page["tenants"] == [beta]
    status, one = await get_json(proxy, "/admin/tenants/beta", admin_key)
    assert one == beta
    status, missing = await get_json(proxy, "/admin/tenants/nobody", admin_key)
    assert (status, missing["error"]["code"]) == (404, "tenant_not_found")


async def test_receipts_filter_by_tenant_status_and_time(
    proxy: Proxy, get_json: GetJson, admin_key: str
) -> None:
    _, everything = await get_json(proxy, "/admin/receipts", admin_key)
    assert len(everything["receipts"]) == 4
    times = [r["finished_at"] for r in everything["receipts"]]
    assert times == sorted(times, reverse=True)  # newest first
    assert {r["verification"] for r in everything["receipts"]} == {"verified"}
    _, denied = await get_json(proxy, "/admin/receipts?status=denied", admin_key)
    assert [(r["tenant_id"], r["decision"]["budget"]) for r in denied["receipts"]] == [
        ("acme", "day")
    ]
    _, beta = await get_json(proxy, "/admin/receipts?tenant=beta", admin_key)
    assert [r["tenant_id"] for r in beta["receipts"]] == ["beta"]
    _, one = await get_json(proxy, "/admin/receipts?limit=1", admin_key)
    assert one["receipts"] == everything["receipts"][:1]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {admin_key}"}
        async with http.get(
            proxy.url + "/admin/receipts", params={"since": later}, headers=auth
        ) as r:
            assert (await r.json())["receipts"] == []
        async with http.get(
            proxy.url + "/admin/receipts", params={"until": later}, headers=auth
        ) as r:
            assert len((await r.json())["receipts"]) == 4
        middle = everything["receipts"][1]["finished_at"]
        async with http.get(
            proxy.url + "/admin/receipts", params={"since": middle}, headers=auth
        ) as r:
            assert len((await r.json())["receipts"]) == 2
        for bad in ({"status": "great"}, {"since": "yesterday"}, {"limit": "0"}):
            async with http.get(proxy.url + "/admin/receipts", params=bad, headers=auth) as r:
                assert r.status == 400


async def test_trail_verification_runs_over_the_receipt_files(
    proxy: Proxy, get_json: GetJson, admin_key: str, tmp_path: Path
) -> None:
    _, before = await get_json(proxy, "/admin/verify", admin_key)
    assert before == {"last": None}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            proxy.url + "/admin/verify", headers={"Authorization": f"Bearer {admin_key}"}
        ) as r,
    ):
        assert r.status == 200
        result = await r.json()
    assert result["available"] is True
    assert result["intact"] is True
    assert result["summary"]["receipts"] == 4
    assert result["problems"] == []
    _, after = await get_json(proxy, "/admin/verify", admin_key)
    assert after["last"] == result
    # Tampering with the trail on disk shows up in the next run.
    (segment,) = (p for p in (tmp_path / "receipts").glob("*.jsonl") if "checkpoints" not in p.name)
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"tenant_id":"acme"', b'"tenant_id":"beta"')
    segment.write_bytes(b"".join(lines))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            proxy.url + "/admin/verify", headers={"Authorization": f"Bearer {admin_key}"}
        ) as r,
    ):
        tampered = await r.json()
    assert tampered["intact"] is False
    assert tampered["problems"]


def test_admin_keys_are_made_by_the_cli_and_checked_by_the_config() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aegis.proxy", "keys", "create", "--admin"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = next(w for w in out.split() if w.startswith("aegis-sk-"))
    assert f'[admin]\napi_keys = ["{hash_key(key)}"]' in out
    settings = parse_settings({"admin": {"api_keys": [hash_key(key)]}})
    assert settings.admin.api_keys == (hash_key(key),)
    with pytest.raises(ValueError, match=r"admin\.api_keys\[0\]: must be a key hash"):
        parse_settings({"admin": {"api_keys": [key]}})
    with pytest.raises(ValueError, match="is also a key of tenant 'acme'"):
        parse_settings(
            {
                "admin": {"api_keys": [hash_key(key)]},
                "tenants": {"acme": {"api_keys": [hash_key(key)]}},
            }
        )


# apply_settings (not this feature's code) replaces app[KEYS] on a started app, which aiohttp
# deprecates; the SIGHUP tests in tests/proxy see the same warning in their subprocess.
async def test_admin_keys_and_tenants_follow_a_reload(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    get_json: GetJson,
    admin_key: str,
) -> None:
    settings = settings_for(tmp_path, openai_upstream)
    proxy = await start_proxy(settings)
    new_admin = "aegis-sk-rotated-admin-key-0123456789"
    reloaded = dataclasses.replace(
        settings,
        admin=AdminSettings(api_keys=(hash_key(new_admin),)),
        tenants={k: v for k, v in settings.tenants.items() if k == "acme"},
    )
    apply_settings(proxy.app, reloaded)
    status, _ = await get_json(proxy, "/admin/tenants", admin_key)
    assert status == 401
    status, body = await get_json(proxy, "/admin/tenants", new_admin)
    assert status == 200
    assert [t["tenant_id"] for t in body["tenants"]] == ["acme"]

"""Tenants cannot reach each other's money, and no secret leaks through any output."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream, Fault, Reply
from fakes.proxy_harness import KEY, OTHER_KEY, UPSTREAM_SECRET, Proxy, make_settings

from aegis.proxy import GATE, AdminSettings, ObservabilitySettings, Settings, hash_key

ADMIN = "aegis-sk-admin-canary-0123456789"
METRICS = "aegis-sk-metrics-canary-0123456789"
RECEIPT_SECRET = "receipt-secret-canary-0123456789"  # what tests/conftest.py sets
StartProxy = Callable[[Settings], Awaitable[Proxy]]
MSGS: list[Any] = [{"role": "user", "content": "hi"}]


async def test_a_spoofed_tenant_header_is_ignored_unless_trusted(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    settings = make_settings(
        tmp_path, openai_upstream, budgets={"per_window": [{"window": "day", "limit_usd": "1"}]}
    )
    proxy = await start_proxy(settings)
    beta = proxy.client(OTHER_KEY, default_headers={"x-tenant-id": "acme"})
    await beta.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=5)
    receipts = proxy.app[GATE].sink.receipts  # type: ignore[attr-defined]
    assert [r.tenant_id for r in receipts] == ["beta"]  # charged to the caller, not to acme
    statement = await proxy.app[GATE].ledger.statement(tenant_id="acme")
    assert all(b.spent_nanos == 0 for b in statement.balances.values())


async def test_request_ids_are_scoped_to_the_tenant(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    headers = {"x-request-id": "shared-id-1"}
    await proxy.client(KEY).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=5, extra_headers=headers
    )
    # Another tenant using the same id is another request: neither blocked nor merged.
    await proxy.client(OTHER_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=5, extra_headers=headers
    )
    # The same tenant reusing a charged id is refused: never charged twice.
    with pytest.raises(openai.ConflictError):
        await proxy.client(KEY).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, max_tokens=5, extra_headers=headers
        )
    assert len(openai_upstream.fake.requests) == 2


async def test_no_secret_appears_in_any_output(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        tmp_path,
        openai_upstream,
        receipts="file",
        budgets={"per_run_usd": "0.0001"},
        model={"allow_models": ["gpt-4o-mini", "o3"]},
    )
    settings = dataclasses.replace(
        settings,
        admin=AdminSettings(api_keys=(hash_key(ADMIN),)),
        observability=ObservabilitySettings(metrics_keys=(hash_key(METRICS),)),
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(
        Reply(text="fine"),
        Fault.unauthorized(),
        Fault.server_error(),
        Fault(400, f"echo {UPSTREAM_SECRET} back", "invalid_request_error"),
    )
    outputs: list[str] = []
    async with aiohttp.ClientSession() as http:
        calls: list[tuple[str, str, dict[str, object], str]] = [
            (
                "POST",
                "/v1/chat/completions",
                {"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 5},
                KEY,
            ),
            ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSGS}, KEY),
            ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSGS}, KEY),
            ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSGS}, KEY),
            ("POST", "/v1/chat/completions", {"model": "o3", "messages": MSGS}, KEY),
            ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": MSGS}, KEY),
            ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini"}, KEY),
            ("POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSGS}, KEY + "x"),
            ("GET", "/v1/models", {}, KEY),
            ("GET", "/readyz", {}, KEY),
            ("GET", "/metrics", {}, KEY),
            ("GET", "/metrics", {}, METRICS),
            ("GET", "/v1/aegis/usage", {}, KEY),
            ("GET", "/admin/tenants", {}, ADMIN),
            ("GET", "/admin/usage", {}, ADMIN),
            ("GET", "/admin/receipts", {}, ADMIN),
            ("POST", "/admin/verify", {}, ADMIN),
            ("GET", "/admin/tenants", {}, KEY),
        ]
        for method, path, body, key in calls:
            async with http.request(
                method,
                proxy.url + path,
                json=body or None,
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                outputs.append(
                    f"{response.status} {dict(response.headers)} {await response.text()}"
                )
        # The control plane: store keys are secrets too, shown once (in the answer that made
        # them) and nowhere else, not even as a hash.
        store_keys: list[str] = []

        async def manage(method: str, path: str, body: Any = None) -> Any:
            async with http.request(
                method,
                proxy.url + path,
                json=body,
                headers={"Authorization": f"Bearer {ADMIN}"},
            ) as response:
                data = await response.json()
                if isinstance(data, dict) and "key" in data:
                    store_keys.append(data["key"])
                else:
                    outputs.append(f"{response.status} {dict(response.headers)} {data}")
                return data

        await manage("POST", "/admin/tenants", {"tenant_id": "store-t", "policy": {}})
        made = await manage("POST", "/admin/tenants/store-t/keys", {"name": "app"})
        for key in (made["key"], made["key"] + "x"):
            async with http.post(
                proxy.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 5},
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                outputs.append(f"{response.status} {await response.text()}")
        await manage("GET", "/admin/tenants/store-t/keys")
        await manage("GET", f"/admin/tenants/store-t/keys/{made['key_id']}")
        await manage("POST", f"/admin/tenants/store-t/keys/{made['key_id']}/rotate", {})
        await manage("POST", f"/admin/tenants/store-t/keys/{made['key_id']}/revoke")
        await manage("GET", "/admin/tenants/store-t")
        await manage("PUT", "/admin/tenants/store-t", {"policy": {"x": 1}, "version": 1})
        assert len(store_keys) == 2
    await proxy.close()  # flushes the receipt trail
    # The upstream's error body echoing its own key is the provider's business, passed through
    # unchanged as the proxy issue requires: it is not one of our output surfaces.
    ours = [o for o in outputs if "echo" not in o]
    surfaces = {
        "responses": "\n".join(ours),
        "logs": "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "receipts": "\n".join(
            p.read_text() for p in (tmp_path / "receipts").rglob("*") if p.is_file()
        ),
    }
    assert surfaces["receipts"], "the run must have written receipts"
    assert "aegis_requests_total" in surfaces["responses"]  # /metrics was read
    assert '"tenants"' in surfaces["responses"]  # /admin answered the admin key
    for name, text in surfaces.items():
        for secret in (
            UPSTREAM_SECRET,
            KEY,
            OTHER_KEY,
            RECEIPT_SECRET,
            ADMIN,
            METRICS,
            *store_keys,
        ):
            assert secret not in text, f"{secret[:8]}... leaked into {name}"
        for key in (KEY, OTHER_KEY, ADMIN, METRICS, *store_keys):
            assert hash_key(key)[7:] not in text, f"the hash of {key[:8]}... leaked into {name}"
    for line in surfaces["receipts"].splitlines():
        if line.startswith("{"):
            assert "content" not in json.loads(line)  # no prompt text in receipts

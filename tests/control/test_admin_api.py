"""The admin API's management routes on the real proxy (SQLite store beside the ledger), called
with aiohttp and the real openai SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY, Proxy

from aegis.core import hash_key
from aegis.proxy import ConfigProblems, Settings, parse_settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
HI: list[Any] = [{"role": "user", "content": "hi"}]
POLICY = {
    "budgets": {"per_window": [{"window": "day", "limit_usd": "1"}]},
    "model": {"allow_models": ["gpt-4o*"]},
}


class Admin:
    """Calls the admin API with the admin key and remembers every answer's text."""

    def __init__(self, proxy: Proxy, key: str) -> None:
        self.proxy = proxy
        self.key = key
        self.seen: list[str] = []

    async def __call__(
        self, method: str, path: str, body: Any = None, *, key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key or self.key}", "x-aegis-actor": "alice"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                self.proxy.url + path,
                headers=headers,
                data=None if body is None else json.dumps(body),
            ) as response,
        ):
            text = await response.text()
            self.seen.append(text)
            return response.status, json.loads(text) if text else None


@pytest.fixture
async def proxy(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
) -> Proxy:
    return await start_proxy(settings_for(tmp_path, openai_upstream, receipts="file"))


@pytest.fixture
def admin(proxy: Proxy, admin_key: str) -> Admin:
    return Admin(proxy, admin_key)


def receipts(tmp_path: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((tmp_path / "receipts").glob("*.jsonl")):
        if not path.name.endswith(".checkpoints.jsonl"):
            found.extend(json.loads(line) for line in path.read_text().splitlines())
    return [r for r in found if "seq" in r]


async def make_tenant(admin: Admin, tenant: str = "cust-1", policy: Any = None) -> dict[str, Any]:
    status, body = await admin(
        "POST", "/admin/tenants", {"tenant_id": tenant, "policy": policy or POLICY}
    )
    assert status == 201, body
    return dict(body)


async def make_key(admin: Admin, tenant: str = "cust-1", **fields: Any) -> dict[str, Any]:
    status, body = await admin("POST", f"/admin/tenants/{tenant}/keys", fields)
    assert status == 201, body
    return dict(body)


async def call(proxy: Proxy, key: str, model: str = "gpt-4o-mini") -> Any:
    return await proxy.client(key).chat.completions.create(model=model, messages=HI, max_tokens=30)


async def test_lifecycle_through_the_api_with_the_openai_sdk(
    proxy: Proxy, admin: Admin, tmp_path: Path
) -> None:
    tenant = await make_tenant(admin)
    assert tenant["source"] == "store"
    assert tenant["version"] == 1
    assert not tenant["read_only"]
    made = await make_key(admin, name="ci")
    secret = made["key"]
    assert secret.startswith("aegis-sk-")
    assert made["prefix"] == secret[:13]
    assert "key_hash" not in made
    await call(proxy, secret)

    # Lower the budget below one call's worst case: the next call is refused.
    lowered = {**POLICY, "budgets": {"per_window": [{"window": "day", "limit_usd": "0.000001"}]}}
    status, body = await admin("PUT", "/admin/tenants/cust-1", {"policy": lowered, "version": 1})
    assert status == 200
    assert body["version"] == 2
    with pytest.raises(openai.RateLimitError):
        await call(proxy, secret)
    status, body = await admin("PUT", "/admin/tenants/cust-1", {"policy": POLICY, "version": 2})
    assert status == 200
    await call(proxy, secret)

    # Rotate with a grace period: both keys work; then revoke the old one.
    status, rotated = await admin(
        "POST", f"/admin/tenants/cust-1/keys/{made['key_id']}/rotate", {"grace_s": 300}
    )
    assert status == 201, rotated
    assert rotated["rotated_from"] == made["key_id"]
    assert rotated["old"]["state"] == "grace"
    await call(proxy, secret)
    await call(proxy, rotated["key"])
    status, revoked = await admin("POST", f"/admin/tenants/cust-1/keys/{made['key_id']}/revoke")
    assert status == 200
    assert revoked["state"] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        await call(proxy, secret)
    await call(proxy, rotated["key"])

    # Expire: a key past its expires_at is refused.
    status, current = await admin("GET", f"/admin/tenants/cust-1/keys/{rotated['key_id']}")
    now = datetime.now(UTC).isoformat()
    status, expired = await admin(
        "PATCH",
        f"/admin/tenants/cust-1/keys/{rotated['key_id']}",
        {"expires_at": now, "version": current["version"]},
    )
    assert status == 200
    assert expired["state"] == "expired"
    with pytest.raises(openai.AuthenticationError):
        await call(proxy, rotated["key"])

    status, listing = await admin("GET", "/admin/tenants/cust-1/keys")
    assert [k["state"] for k in listing["keys"]] == ["revoked", "expired"]
    # A store tenant's usage is its own (not lumped into "other").
    status, usage = await admin("GET", "/admin/usage/cust-1")
    assert usage["since_start"]["outcomes"] == {"ok": 5, "denied": 1}
    assert usage["budgets"][0]["limit_usd"] == "1"
    status, everyone = await admin("GET", "/admin/usage")
    assert "cust-1" in [t["tenant_id"] for t in everyone["tenants"]]

    # Every change left a signed admin receipt: who, what, policy versions before and after.
    events = [r for r in receipts(tmp_path) if r["capability"].startswith("admin:")]
    assert [r["capability"] for r in events] == [
        "admin:tenant.create",
        "admin:key.create",
        "admin:tenant.update",
        "admin:tenant.update",
        "admin:key.rotate",
        "admin:key.revoke",
        "admin:key.update",
    ]
    first_update = events[2]
    assert first_update["status"] == "alert"
    assert first_update["tenant_id"] == "cust-1"
    assert "(alice)" in first_update["error"]
    assert first_update["error"].startswith("admin-")
    assert tenant["policy_version"] in first_update["error"]
    assert first_update["policy_version"] in first_update["error"]
    assert first_update["policy_version"] != tenant["policy_version"]
    status, report = await admin("POST", "/admin/verify")
    assert status == 200
    assert report["intact"] is True, report
    assert report["problems"] == []
    # The key itself is never in a receipt, an answer other than its creation, or a hash.
    trail = "".join(p.read_text() for p in (tmp_path / "receipts").glob("*"))
    for text in (trail, *admin.seen[1:]):
        if secret in text and '"key": "' + secret in text:
            continue
        assert secret not in text
        assert hash_key(secret)[7:] not in text


async def test_policies_are_validated_like_check_config(admin: Admin) -> None:
    bad = {"budgets": {"per_window": [{"window": "day", "limit_usd": "lots"}]}}
    status, body = await admin("POST", "/admin/tenants", {"tenant_id": "t1", "policy": bad})
    assert status == 400
    with pytest.raises(ConfigProblems) as caught:
        parse_settings({"tenants": {"t1": bad}})
    (problem,) = caught.value.problems
    field, _, message = problem.removeprefix("tenants.t1.").partition(": ")
    assert body["error"]["param"] == f"policy.{field}"
    assert body["error"]["message"] == f"policy.{field}: {message}"
    assert body["error"]["type"] == "invalid_request_error"

    for payload, param in (
        ({"tenant_id": "t1", "policy": POLICY, "colour": "red"}, "colour"),
        ({"tenant_id": "no spaces", "policy": POLICY}, "tenant_id"),
        ({"tenant_id": "{t}", "policy": POLICY}, "tenant_id"),
        (
            {"tenant_id": "t1", "policy": {"routing": {"primary_provider": "nope"}}},
            "policy.routing",
        ),
        ({"tenant_id": "t1", "policy": {"api_keys": ["sha256:00"]}}, "policy.api_keys"),
        ({"tenant_id": "t1", "policy": {"model": {"allow": ["x"]}}}, "policy.model.allow"),
    ):
        status, body = await admin("POST", "/admin/tenants", payload)
        assert (status, body["error"]["param"]) == (400, param), body
    status, body = await admin("POST", "/admin/tenants", "not an object")
    assert status == 400
    assert body["error"]["code"] == "invalid_json"

    await make_tenant(admin, "t1")
    status, body = await admin("PUT", "/admin/tenants/t1", {"policy": POLICY})
    assert (status, body["error"]["param"]) == (400, "version")
    for fields, param in (
        ({"expires_at": "soon"}, "expires_at"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"allow_models": []}, "allow_models"),
        ({"per_window": [{"window": "week", "limit_usd": "1"}]}, "per_window[0].window"),
        ({"per_window": [{"window": "day", "limit_usd": "2"}]}, "per_window[0].limit_usd"),
        ({"name": ""}, "name"),
        ({"secret": "x"}, "secret"),
    ):
        status, body = await admin("POST", "/admin/tenants/t1/keys", fields)
        assert (status, body["error"]["param"]) == (400, param), (fields, body)


async def test_concurrent_edits_one_wins_the_rest_get_409(admin: Admin) -> None:
    await make_tenant(admin, "t1")
    edits = [
        {**POLICY, "budgets": {"per_window": [{"window": "day", "limit_usd": str(n)}]}}
        for n in range(2, 8)
    ]
    answers = await asyncio.gather(
        *(admin("PUT", "/admin/tenants/t1", {"policy": p, "version": 1}) for p in edits)
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 409, 409, 409, 409, 409]
    conflict = next(body for status, body in answers if status == 409)
    assert conflict["error"]["code"] == "version_conflict"
    status, body = await admin("GET", "/admin/tenants/t1")
    assert body["version"] == 2
    status, body = await admin("DELETE", "/admin/tenants/t1?version=1")
    assert status == 409
    status, body = await admin("DELETE", "/admin/tenants/t1?version=2")
    assert status == 200
    status, body = await admin("GET", "/admin/tenants/t1")
    assert status == 404
    assert body["error"]["code"] == "tenant_not_found"


async def test_unknown_ids_404_and_another_tenants_key_is_never_revealed(admin: Admin) -> None:
    await make_tenant(admin, "t1")
    await make_tenant(admin, "t2")
    theirs = await make_key(admin, "t2")
    for method, path in (
        ("GET", "/admin/tenants/ghost"),
        ("PUT", "/admin/tenants/ghost"),
        ("DELETE", "/admin/tenants/ghost?version=1"),
        ("GET", "/admin/tenants/ghost/keys"),
        ("POST", "/admin/tenants/ghost/keys"),
    ):
        status, body = await admin(method, path, {"policy": POLICY, "version": 1})
        assert status == 404, (method, path, body)
    mine_missing = await admin("GET", "/admin/tenants/t1/keys/key_0000000000000000")
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"version": 1, "name": "x"}),
        ("POST", "/revoke", None),
        ("POST", "/rotate", {}),
    ):
        status, answer = await admin(
            method, f"/admin/tenants/t1/keys/{theirs['key_id']}{suffix}", body
        )
        assert status == 404
        assert answer["error"]["code"] == mine_missing[1]["error"]["code"] == "key_not_found"
        assert answer["error"]["message"] == mine_missing[1]["error"]["message"].replace(
            "key_0000000000000000", theirs["key_id"]
        )
    status, listing = await admin("GET", "/admin/tenants/t1/keys")
    assert listing["keys"] == []
    # Still valid: nothing was revoked through the other tenant's path.
    status, still = await admin("GET", f"/admin/tenants/t2/keys/{theirs['key_id']}")
    assert still["state"] == "active"


async def test_file_tenants_are_listed_and_read_only(admin: Admin) -> None:
    await make_tenant(admin, "store-1")
    status, listing = await admin("GET", "/admin/tenants")
    by_id = {t["tenant_id"]: t for t in listing["tenants"]}
    assert listing["total"] == 3
    assert by_id["acme"]["source"] == "file"
    assert by_id["acme"]["read_only"] is True
    assert by_id["store-1"]["source"] == "store"
    status, page = await admin("GET", "/admin/tenants?limit=1&offset=2")
    assert [t["tenant_id"] for t in page["tenants"]] == ["store-1"]
    for method, path, body in (
        ("PUT", "/admin/tenants/acme", {"policy": POLICY, "version": 1}),
        ("DELETE", "/admin/tenants/acme?version=1", None),
        ("POST", "/admin/tenants/acme/keys", {}),
    ):
        status, answer = await admin(method, path, body)
        assert (status, answer["error"]["code"]) == (409, "tenant_read_only"), (method, path)
        assert "config file" in answer["error"]["message"]
    status, answer = await admin("POST", "/admin/tenants", {"tenant_id": "acme"})
    assert (status, answer["error"]["code"]) == (409, "tenant_exists")
    status, keys = await admin("GET", "/admin/tenants/acme/keys")
    assert keys["read_only"] is True
    assert keys["file_keys"] == 1


async def test_per_key_models_and_budget_narrow_the_tenants(proxy: Proxy, admin: Admin) -> None:
    await make_tenant(admin, "team")
    narrow = await make_key(
        admin,
        "team",
        allow_models=["gpt-4o-mini"],
        per_window=[{"window": "day", "limit_usd": "0.000001"}],
    )
    wide = await make_key(admin, "team")
    with pytest.raises(openai.PermissionDeniedError):
        await call(proxy, narrow["key"], model="gpt-4o")
    with pytest.raises(openai.RateLimitError) as caught:
        await call(proxy, narrow["key"])
    assert caught.value.response.headers["x-aegis-budget"] == "key_day"
    await call(proxy, wide["key"], model="gpt-4o")  # the tenant still has room
    # Widen the key's budget: its calls pass again.
    status, patched = await admin(
        "PATCH",
        f"/admin/tenants/team/keys/{narrow['key_id']}",
        {"version": 1, "per_window": [{"window": "day", "limit_usd": "0.5"}]},
    )
    assert status == 200
    assert patched["per_window"] == [{"window": "day", "limit_usd": "0.5"}]
    assert patched["allow_models"] == ["gpt-4o-mini"]
    await call(proxy, narrow["key"])


async def test_tenant_keys_and_strangers_cannot_manage(proxy: Proxy, admin: Admin) -> None:
    await make_tenant(admin, "t1")
    store_key = (await make_key(admin, "t1"))["key"]
    for key, status in ((KEY, 403), (store_key, 403), ("aegis-sk-nobody", 401)):
        for method, path in (
            ("POST", "/admin/tenants"),
            ("GET", "/admin/tenants/t1/keys"),
            ("GET", "/admin/openapi.json"),
        ):
            got, _ = await admin(method, path, {"tenant_id": "x"}, key=key)
            assert got == status, (key[:12], method, path)


async def test_openapi_document_names_every_admin_route(proxy: Proxy, admin: Admin) -> None:
    status, doc = await admin("GET", "/admin/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    registered: set[tuple[str, str]] = set()
    for resource in proxy.app.router.resources():
        path = resource.canonical
        if not path.startswith("/admin/"):
            continue
        for route in resource:
            if route.method not in ("HEAD", "OPTIONS"):
                registered.add((route.method.lower(), path))
    documented = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == registered


async def test_a_change_that_cannot_be_receipted_is_not_made(
    proxy: Proxy, admin: Admin, tmp_path: Path
) -> None:
    from aegis.proxy.state import GATE

    await make_tenant(admin, "t1")
    sink = proxy.app[GATE].sink
    broken = ValueError("disk gone")

    def check() -> None:
        from aegis.core import ReceiptSinkUnavailable

        raise ReceiptSinkUnavailable(f"receipt sink failed: {broken}")

    original = sink.check
    sink.check = check  # type: ignore[method-assign]
    try:
        status, body = await admin("PUT", "/admin/tenants/t1", {"policy": POLICY, "version": 1})
        assert status == 503
        status, body = await admin("POST", "/admin/tenants/t1/keys", {})
        assert status == 503
    finally:
        sink.check = original  # type: ignore[method-assign]
    status, body = await admin("GET", "/admin/tenants/t1")
    assert body["version"] == 1
    assert body["api_keys"] == 0


def _future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_expires_at_on_creation(proxy: Proxy, admin: Admin) -> None:
    await make_tenant(admin, "t1")
    made = await make_key(admin, "t1", expires_at=_future(1.5))
    await call(proxy, made["key"])
    await asyncio.sleep(1.6)
    with pytest.raises(openai.AuthenticationError):
        await call(proxy, made["key"])
    _status, got = await admin("GET", f"/admin/tenants/t1/keys/{made['key_id']}")
    assert got["state"] == "expired"

"""Three real ``aegis-proxy`` replicas sharing a real PostgreSQL control-plane store and a real
Redis ledger: a change made through any replica is in force on all of them within 5 s."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import openai
from fakes.openai_upstream import FakeUpstream
from fakes.postgres_server import PostgresServer, fresh_database
from fakes.redis_replicas import Replica, StartReplicas
from openai import AsyncOpenAI

from aegis.core import hash_key

ADMIN_KEY = "aegis-sk-replica-admin-key-0123456789"
PROPAGATION_S = 5.0
POLICY = {
    "budgets": {"per_window": [{"window": "day", "limit_usd": "1"}]},
    "model": {"allow_models": ["gpt-4o*"]},
}


async def admin(replica: Replica, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            replica.url + path,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            data=None if body is None else json.dumps(body),
        ) as response,
    ):
        return response.status, await response.json()


async def status_of(replica: Replica, key: str, **headers: str) -> int:
    async with AsyncOpenAI(base_url=replica.url + "/v1", api_key=key, max_retries=0) as sdk:
        try:
            await sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=16,
                extra_headers=headers or None,
            )
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


async def until(replicas: list[Replica], key: str, status: int, started: float) -> list[float]:
    """Seconds from ``started`` until each replica answers ``key`` with ``status``."""

    async def one(replica: Replica) -> float:
        while await status_of(replica, key) != status:
            assert time.monotonic() - started < PROPAGATION_S + 5, "never propagated"
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    return list(await asyncio.gather(*(one(r) for r in replicas)))


async def start_three(
    start_replicas: StartReplicas, postgres_server: PostgresServer
) -> list[Replica]:
    dsn = await fresh_database(postgres_server)
    extra = (
        f'[admin]\napi_keys = ["{hash_key(ADMIN_KEY)}"]\n'
        f'[store]\nbackend = "postgres"\nurl = "{dsn}"\npoll_interval_s = 1\n'
    )
    return await start_replicas(3, extra)


async def test_changes_reach_every_replica_within_5s(
    start_replicas: StartReplicas,
    postgres_server: PostgresServer,
    openai_upstream: FakeUpstream,
) -> None:
    replicas = await start_three(start_replicas, postgres_server)
    a, b, c = replicas

    # Create a tenant and a key through replica a; every replica serves it.
    status, _ = await admin(a, "POST", "/admin/tenants", {"tenant_id": "cust", "policy": POLICY})
    assert status == 201
    status, made = await admin(a, "POST", "/admin/tenants/cust/keys", {"name": "app"})
    assert status == 201
    key = made["key"]
    assert [await status_of(r, key) for r in replicas] == [200, 200, 200]

    # Lower the budget through replica b: the next calls on every replica are refused.
    low = {**POLICY, "budgets": {"per_window": [{"window": "day", "limit_usd": "0.000001"}]}}
    started = time.monotonic()
    status, _ = await admin(b, "PUT", "/admin/tenants/cust", {"policy": low, "version": 1})
    assert status == 200
    assert max(await until(replicas, key, 429, started)) <= PROPAGATION_S
    status, _ = await admin(c, "PUT", "/admin/tenants/cust", {"policy": POLICY, "version": 2})
    assert status == 200
    assert max(await until(replicas, key, 200, time.monotonic())) <= PROPAGATION_S

    # Revoke through replica c: 401 on all three within 5 s.
    started = time.monotonic()
    status, _ = await admin(c, "POST", f"/admin/tenants/cust/keys/{made['key_id']}/revoke")
    assert status == 200
    revoked_after = await until(replicas, key, 401, started)
    assert max(revoked_after) <= PROPAGATION_S, revoked_after

    # Rotate with a grace period: both keys work everywhere until it ends, then the old one
    # is refused everywhere.
    status, second = await admin(a, "POST", "/admin/tenants/cust/keys", {})
    assert [await status_of(r, second["key"]) for r in replicas] == [200, 200, 200]
    status, rotated = await admin(
        b, "POST", f"/admin/tenants/cust/keys/{second['key_id']}/rotate", {"grace_s": 3}
    )
    assert status == 201
    grace_started = time.monotonic()
    for r in replicas:
        assert await status_of(r, second["key"]) == 200
        assert await status_of(r, rotated["key"]) == 200
    assert time.monotonic() - grace_started < 3
    after_grace = await until(replicas, second["key"], 401, grace_started)
    assert max(after_grace) <= 3 + PROPAGATION_S
    assert [await status_of(r, rotated["key"]) for r in replicas] == [200, 200, 200]

    # Expire: a key made through one replica stops working on all at its expires_at.
    expires = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    status, short = await admin(c, "POST", "/admin/tenants/cust/keys", {"expires_at": expires})
    assert status == 201
    expiry_started = time.monotonic()
    assert await status_of(a, short["key"]) == 200
    expired_after = await until(replicas, short["key"], 401, expiry_started)
    assert max(expired_after) <= 2 + 1

    # Idempotency-Key entries live in the shared Redis: a retry on another replica replays.
    before = len(openai_upstream.fake.requests)
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
    )
    headers = {
        "Authorization": f"Bearer {rotated['key']}",
        "Idempotency-Key": "retry-1",
        "Content-Type": "application/json",
    }
    answers = []
    async with aiohttp.ClientSession() as http:
        for replica in (a, c):
            async with http.post(
                replica.url + "/v1/chat/completions", headers=headers, data=body
            ) as response:
                answers.append((response.status, response.headers, await response.read()))
    assert [status for status, _, _ in answers] == [200, 200]
    assert "x-aegis-idempotent-replay" not in answers[0][1]
    assert answers[1][1]["x-aegis-idempotent-replay"] == "true"
    assert answers[1][2] == answers[0][2]
    assert len(openai_upstream.fake.requests) == before + 1


async def test_store_down_fails_closed(
    start_replicas: StartReplicas,
    postgres_server: PostgresServer,
) -> None:
    # A server of its own: this test stops it.
    own = PostgresServer()
    own.start()
    try:
        dsn = await fresh_database(own)
        extra = (
            f'[admin]\napi_keys = ["{hash_key(ADMIN_KEY)}"]\n'
            f'[store]\nbackend = "postgres"\nurl = "{dsn}"\npoll_interval_s = 0.5\n'
            "stale_after_s = 2\n"
        )
        (replica,) = await start_replicas(1, extra)
        await admin(replica, "POST", "/admin/tenants", {"tenant_id": "cust", "policy": POLICY})
        _, made = await admin(replica, "POST", "/admin/tenants/cust/keys", {})
        assert await status_of(replica, made["key"]) == 200
        own.stop()
        # Within the staleness window the cached key may still pass; after it, refused (503),
        # never waved through; an unknown key is refused too.
        await asyncio.sleep(2.5)
        assert await status_of(replica, made["key"]) == 503
        assert await status_of(replica, "aegis-sk-never-issued") == 503
        status, body = await admin(replica, "GET", "/admin/tenants/cust")
        assert status == 503
        assert body["error"]["code"] == "store_unavailable"
        assert made["key"] not in json.dumps(body)
        own.start()
        await asyncio.sleep(1.5)
        assert await status_of(replica, made["key"]) == 200
    finally:
        own.close()

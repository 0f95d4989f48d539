"""Three real `aegis-proxy` replicas sharing one real Redis: one budget, held exactly."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections import Counter
from pathlib import Path

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.redis_replicas import KEY, PROXY, Replica, StartReplicas
from fakes.redis_server import RedisServer
from openai import AsyncOpenAI

from aegis.core import RedisLedger, Statement, format_usd, parse_usd

LIMIT_USD = "0.002"
TENANT = f'[tenants.acme.budgets]\nper_window = [{{window = "day", limit_usd = "{LIMIT_USD}"}}]\n'


def client(replica: Replica) -> AsyncOpenAI:
    # Generous timeouts: 60 connections at once to three processes on a busy 2-core machine
    # can wait seconds to be accepted, which says nothing about the budget being tested.
    return AsyncOpenAI(base_url=replica.url + "/v1", api_key=KEY, max_retries=0, timeout=120.0)


async def create(sdk: AsyncOpenAI, request_id: str, max_tokens: int) -> int:
    """One chat completion through the real SDK; the HTTP status it ended with."""
    try:
        await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say hello to every replica"}],
            max_tokens=max_tokens,
            extra_headers={"x-request-id": request_id},
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


async def ask(replica: Replica, request_id: str, max_tokens: int = 32) -> int:
    """:func:`create` on a client of its own."""
    async with client(replica) as sdk:
        return await create(sdk, request_id, max_tokens)


async def statement(redis: RedisServer) -> Statement:
    ledger = RedisLedger(redis.url, create_epoch=False)
    try:
        return await ledger.statement(tenant_id="acme")
    finally:
        await ledger.close()


def day_totals(found: Statement) -> tuple[int, int]:
    days = [b for key, b in found.balances.items() if key.startswith("day:")]
    return sum(b.committed_nanos for b in days), sum(b.pending_nanos for b in days)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PROXY, *args], capture_output=True, text=True, timeout=60)


async def readyz(replica: Replica) -> int:
    async with aiohttp.ClientSession() as http, http.get(replica.url + "/readyz") as response:
        return response.status


async def test_three_replicas_hammered_never_overspend_and_account_to_the_nano(
    start_replicas: StartReplicas, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> None:
    replicas = await start_replicas(3, TENANT)
    rng = random.Random(2026)
    plan = [(f"req-{i:03d}", rng.randrange(1, 120)) for i in range(600)]
    gate = asyncio.Semaphore(60)
    statuses: dict[str, int] = {}

    sdks = [client(replica) for replica in replicas]

    async def one(i: int, request_id: str, max_tokens: int) -> None:
        async with gate:
            statuses[request_id] = await create(sdks[i % 3], request_id, max_tokens)

    await asyncio.gather(*(one(i, rid, mt) for i, (rid, mt) in enumerate(plan)))
    for sdk in sdks:
        await sdk.close()

    allowed = {rid for rid, status in statuses.items() if status == 200}
    assert set(statuses.values()) == {200, 429}, Counter(statuses.values())
    receipts = [r for replica in replicas for r in replica.receipts()]
    per_request = Counter(r["request_id"] for r in receipts)
    assert per_request == Counter({rid: 1 for rid, _ in plan})  # one receipt per request
    assert {r["request_id"] for r in receipts if r["decision"]["allowed"]} == allowed
    assert all(len(replica.receipts()) > 0 for replica in replicas)
    assert len(openai_upstream.fake.requests) == len(allowed)  # no ungoverned call

    charged = sum(parse_usd(r["actual_usd"]) for r in receipts if r["decision"]["allowed"])
    committed, pending = day_totals(await statement(redis_server))
    assert (committed, pending) == (charged, 0)
    assert committed <= parse_usd(LIMIT_USD)

    shown = cli("usage", "acme", "--config", str(replicas[0].config))
    assert shown.returncode == 0, shown.stderr
    assert f"${format_usd(committed)}" in shown.stdout
    assert f"${LIMIT_USD}" in shown.stdout
    assert "pending reservations: 0" in shown.stdout


async def test_a_replica_killed_mid_flight_releases_its_holds_within_the_ttl(
    start_replicas: StartReplicas, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> None:
    ttl_s = 3
    victim, survivor = await start_replicas(
        2,
        f"reservation_ttl_s = {ttl_s}\n"
        '[tenants.acme.budgets]\nper_window = [{window = "day", limit_usd = "0.0035"}]\n',
    )
    openai_upstream.fake.enqueue(*(Reply(delay_s=120) for _ in range(5)))
    hung = [asyncio.create_task(ask(victim, f"hung-{i}", max_tokens=1000)) for i in range(5)]
    await asyncio.wait_for(openai_upstream.fake.wait_for_requests(5), 30)
    held = await statement(redis_server)
    assert len(held.holds) == 5

    victim.kill()
    outcomes = await asyncio.gather(*hung, return_exceptions=True)
    assert all(isinstance(o, openai.APIConnectionError) for o in outcomes), outcomes
    assert await ask(survivor, "while-held", max_tokens=1000) == 429  # the dead holds still count

    deadline = time.monotonic() + ttl_s + 30
    while (await statement(redis_server)).holds:
        assert time.monotonic() < deadline, "the dead replica's holds were never released"
        await asyncio.sleep(0.2)
    after = await statement(redis_server)
    assert day_totals(after) == (0, 0)
    assert await ask(survivor, "after-expiry", max_tokens=1000) == 200  # the budget is whole
    committed, pending = day_totals(await statement(redis_server))
    assert pending == 0
    assert committed > 0


async def test_a_redis_outage_refuses_calls_with_503_and_recovery_needs_nobody(
    tmp_path: Path, start_replicas: StartReplicas, openai_upstream: FakeUpstream
) -> None:
    # The test's usual Redis runs without persistence; this one persists as the README says.
    durable = RedisServer(tmp_path / "durable", persistent=True)
    durable.start()
    try:
        replicas = await start_replicas(2, TENANT, durable)
        assert [await ask(r, f"before-{i}") for i, r in enumerate(replicas)] == [200, 200]
        calls_before = len(openai_upstream.fake.requests)

        durable.stop()
        assert [await ask(r, f"during-{i}") for i, r in enumerate(replicas)] == [503, 503]
        assert [await readyz(r) for r in replicas] == [503, 503]
        assert len(openai_upstream.fake.requests) == calls_before  # no ungoverned spend

        durable.start()  # same port, data intact (AOF)
        assert [await ask(r, f"after-{i}") for i, r in enumerate(replicas)] == [200, 200]
        assert [await readyz(r) for r in replicas] == [200, 200]
        committed, pending = day_totals(await statement(durable))
        receipts = [x for r in replicas for x in r.receipts() if x["decision"]["allowed"]]
        assert committed == sum(parse_usd(x["actual_usd"]) for x in receipts)
        assert len(receipts) == 4
        assert pending == 0
    finally:
        durable.stop()


@pytest.mark.parametrize("loss", ["flushall", "restart without persistence"])
async def test_lost_redis_data_fails_closed_until_an_operator_accepts_it(
    loss: str,
    start_replicas: StartReplicas,
    redis_server: RedisServer,
    openai_upstream: FakeUpstream,
) -> None:
    replicas = await start_replicas(2, TENANT)
    assert [await ask(r, f"before-{i}") for i, r in enumerate(replicas)] == [200, 200]
    calls_before = len(openai_upstream.fake.requests)

    if loss == "flushall":
        assert redis_server.command("FLUSHALL").startswith(b"+OK")
    else:
        redis_server.stop()
        redis_server.start()
    # Zero spend would be a lie: every replica refuses instead, and says why.
    assert [await ask(r, f"lost-{i}") for i, r in enumerate(replicas)] == [503, 503]
    assert [await readyz(r) for r in replicas] == [503, 503]
    assert len(openai_upstream.fake.requests) == calls_before
    shown = cli("usage", "acme", "--config", str(replicas[0].config))
    assert shown.returncode == 1
    assert "lost its data" in shown.stderr

    # A replica restarted after the loss still remembers the epoch (its epoch file).
    replicas[1].stop()
    restarted = subprocess.Popen(
        [*PROXY, "serve", "--config", str(replicas[1].config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "FAKE_KEY": "sk-upstream", "AEGIS_RECEIPT_SECRET": "r" * 32},
    )
    replicas[1].process = restarted
    deadline = time.monotonic() + 30
    while True:
        try:
            assert await readyz(replicas[1]) == 503
            break
        except aiohttp.ClientError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    assert await ask(replicas[1], "lost-restarted") == 503

    accepted = cli("ledger", "accept-loss", "--config", str(replicas[0].config))
    assert accepted.returncode == 0, accepted.stderr
    assert "new ledger epoch" in accepted.stdout
    # Every replica adopts the operator's new epoch by itself.
    assert [await ask(r, f"accepted-{i}") for i, r in enumerate(replicas)] == [200, 200]
    assert [await readyz(r) for r in replicas] == [200, 200]

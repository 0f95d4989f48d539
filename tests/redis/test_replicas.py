"""Three real `aegis-proxy` replicas sharing one real Redis: one budget, held exactly."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections import Counter

import aiohttp
import openai
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.redis_replicas import KEY, PROXY, Replica, StartReplicas
from fakes.redis_server import RedisServer
from openai import AsyncOpenAI

from aegis.core import RedisLedger, Statement, format_usd, parse_usd

LIMIT_USD = "0.002"
TENANT = f'[tenants.acme.budgets]\nper_window = [{{window = "day", limit_usd = "{LIMIT_USD}"}}]\n'


def client(replica: Replica) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=replica.url + "/v1", api_key=KEY, max_retries=0)


async def ask(replica: Replica, request_id: str, max_tokens: int = 32) -> int:
    """One chat completion through the real SDK; the HTTP status it ended with."""
    async with client(replica) as sdk:
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

    async def one(i: int, request_id: str, max_tokens: int) -> None:
        async with gate:
            statuses[request_id] = await ask(replicas[i % 3], request_id, max_tokens)

    await asyncio.gather(*(one(i, rid, mt) for i, (rid, mt) in enumerate(plan)))

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

"""The hard limit holds in real dollars under attack (issue 21) on three real replicas sharing
one real Redis: committed spend and the provider's own bill both stay within the limit.

The replicas are real ``aegis-proxy serve`` processes (aiohttp without handler cancellation:
a client that leaves is seen as a failed write, where the in-process tests see a cancelled
handler), attacked through the real openai SDK, round-robin.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
from fakes.attacks import (
    REASONING,
    ask_cut,
    gemini_billed,
    generate,
    leave_chat_after_first_token,
    leave_responses_after_first_token,
    provider_billed,
    stream_to_the_end,
)
from fakes.gemini_upstream import FakeGeminiServer, Reply as GeminiReply
from fakes.openai_upstream import FakeUpstream
from fakes.redis_replicas import KEY, Replica, StartReplicas
from fakes.redis_server import RedisServer
from openai import AsyncOpenAI

from aegis.core import RedisLedger, parse_usd

LIMIT_NANOS = 200_000_000
BUDGET = '[tenants.acme.budgets]\nper_window = [{window = "day", limit_usd = "0.20"}]\n'


def sdk(replica: Replica) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=replica.url + "/v1", api_key=KEY, max_retries=0, timeout=120.0)


async def books(redis: RedisServer) -> tuple[int, int]:
    ledger = RedisLedger(redis.url, create_epoch=False)
    try:
        found = await ledger.statement(tenant_id="acme")
    finally:
        await ledger.close()
    days = [b for key, b in found.balances.items() if key.startswith("day:")]
    return sum(b.committed_nanos for b in days), sum(b.pending_nanos for b in days)


async def allowed_receipts(replicas: list[Replica], count: int) -> list[dict[str, object]]:
    """The receipts of admitted calls, once ``count`` are written."""
    for _ in range(600):
        found = [r for x in replicas for r in x.receipts() if r["decision"]["allowed"]]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(found)} of {count} admitted calls were receipted")


async def assert_limit_held(
    replicas: list[Replica],
    redis: RedisServer,
    upstream: FakeUpstream | FakeGeminiServer,
    admitted: int,
) -> list[dict[str, object]]:
    """The admitted calls are receipted, and neither the ledger nor the provider's own bill
    passed the limit."""
    found = await allowed_receipts(replicas, admitted)
    assert len(found) == admitted
    committed, pending = await books(redis)
    if isinstance(upstream, FakeGeminiServer):
        billed = gemini_billed(upstream.fake.billed)
    else:
        billed = provider_billed(upstream.fake.billed)
    assert len(upstream.fake.billed) == admitted
    assert pending == 0
    assert committed <= LIMIT_NANOS
    assert billed <= LIMIT_NANOS
    assert billed <= committed
    assert committed == sum(parse_usd(str(r["actual_usd"])) for r in found)
    return found


async def test_streams_left_at_the_first_token_never_pass_the_limit_on_three_replicas(
    start_replicas: StartReplicas, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> None:
    """Item 1: 40 reasoning streams left at their first token, four at a time, round-robin."""
    openai_upstream.fake.default = REASONING
    replicas = await start_replicas(3, BUDGET)
    clients = [sdk(r) for r in replicas]
    statuses: list[int] = []
    for batch in range(10):
        leaves = [
            (
                leave_chat_after_first_token
                if (batch + i) % 2
                else leave_responses_after_first_token
            )(clients[(batch * 4 + i) % 3])
            for i in range(4)
        ]
        statuses += await asyncio.gather(*leaves)
        await allowed_receipts(replicas, statuses.count(200))
    for client in clients:
        await client.close()
    admitted = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert admitted < 10
    found = await assert_limit_held(replicas, redis_server, openai_upstream, admitted)
    left = [r for r in found if r["status"] == "cancelled"]
    assert left
    assert {r["usage_source"] for r in left} == {"reported"}


async def test_answers_cut_after_their_headers_never_pass_the_limit_on_three_replicas(
    start_replicas: StartReplicas, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> None:
    """Item 6: 41 non-streamed answers cut after the 200 headers."""
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0, cut_body_at=40)
    replicas = await start_replicas(3, BUDGET)
    clients = [sdk(r) for r in replicas]
    statuses = [await ask_cut(clients[i % 3], responses=i % 2 == 0) for i in range(41)]
    for client in clients:
        await client.close()
    assert set(statuses) == {502, 429}
    found = await assert_limit_held(replicas, redis_server, openai_upstream, statuses.count(502))
    assert {r["usage_source"] for r in found} == {"reservation"}


async def test_calls_outliving_their_ttl_keep_their_holds_on_three_replicas(
    tmp_path: Path,
    start_replicas: StartReplicas,
    redis_server: RedisServer,
    openai_upstream: FakeUpstream,
) -> None:
    """Item 4: four streams running 3x their 1 s TTL, one per replica and one more; every
    call meanwhile is refused, on every replica."""
    replicas = await start_replicas(3, "reservation_ttl_s = 1\n" + BUDGET)
    clients = [sdk(r) for r in replicas]
    slow = dataclasses.replace(REASONING, chunk_delay_s=3.2 / 80)
    openai_upstream.fake.enqueue(slow, slow, slow, slow)
    running = [asyncio.create_task(stream_to_the_end(clients[i % 3])) for i in range(4)]
    await asyncio.wait_for(openai_upstream.fake.wait_for_requests(4), 30)
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0)
    refused = []
    for i in range(5):
        await asyncio.sleep(0.5)
        refused.append(await stream_to_the_end(clients[i % 3]))
    assert refused == [429] * 5
    assert await asyncio.gather(*running) == [200] * 4
    for client in clients:
        await client.close()
    found = await assert_limit_held(replicas, redis_server, openai_upstream, 4)
    assert not any(r["late"] for r in found)


async def test_an_overage_on_one_replica_stops_admission_on_every_replica(
    start_replicas: StartReplicas, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> None:
    """Item 3: an upstream that reports ten times the limit it was sent: posted and flagged
    by the replica that served it, and no replica admits another call while over."""
    openai_upstream.fake.default = dataclasses.replace(
        REASONING, chunk_delay_s=0, completion_tokens=60_000
    )
    replicas = await start_replicas(3, BUDGET)
    clients = [sdk(r) for r in replicas]
    assert await ask_cut(clients[0], responses=False) == 200
    (over,) = await allowed_receipts(replicas, 1)
    assert over["overage"] is True
    committed, pending = await books(redis_server)
    assert (committed, pending) == (parse_usd(str(over["actual_usd"])), 0)
    assert committed > LIMIT_NANOS
    statuses = await asyncio.gather(*(ask_cut(clients[i % 3], i % 2 == 0) for i in range(9)))
    for client in clients:
        await client.close()
    assert statuses == [429] * 9
    assert len(openai_upstream.fake.requests) == 1


async def test_charges_unposted_during_a_redis_outage_are_posted_before_more_is_spent(
    tmp_path: Path, start_replicas: StartReplicas, openai_upstream: FakeUpstream
) -> None:
    """Item 5: Redis goes down for about a second while four streams (on three replicas)
    settle; each replica journals what it could not post and posts it as Redis returns, so
    the calls that follow, round-robin, never spend that money again."""
    durable = RedisServer(tmp_path / "durable", persistent=True)
    durable.start()
    try:
        replicas = await start_replicas(3, "reservation_ttl_s = 5\n" + BUDGET, durable)
        clients = [sdk(r) for r in replicas]
        openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=1.5 / 80)
        running = [asyncio.create_task(stream_to_the_end(clients[i % 3])) for i in range(4)]
        await asyncio.wait_for(openai_upstream.fake.wait_for_requests(4), 30)
        durable.stop()
        assert await asyncio.gather(*running) == [200] * 4
        unsettled = await allowed_receipts(replicas, 4)
        assert all("ledger_unsettled" in str(r["error"]) for r in unsettled)
        durable.start()  # about a second later, data intact (AOF)
        await asyncio.sleep(6)  # past the holds' TTL: without the journal they would lapse
        openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0)
        statuses = [await ask_cut(clients[i % 3], i % 2 == 0) for i in range(9)]
        for client in clients:
            await client.close()
        assert 429 in statuses
        admitted = 4 + statuses.count(200)
        await assert_limit_held(replicas, durable, openai_upstream, admitted)
    finally:
        durable.stop()


async def test_candidate_counts_spelled_as_strings_or_floats_hold_on_three_replicas(
    start_replicas: StartReplicas, redis_server: RedisServer, gemini_upstream: FakeGeminiServer
) -> None:
    """Item 2: ``candidateCount`` "8", 8.0, "8.0", "8e0" reserve eight candidates on every
    replica; 40 raw Gemini calls, eight at a time, round-robin."""
    gemini_upstream.fake.default = GeminiReply(candidates_tokens=1_000)
    gemini = (
        f'[providers.gemini]\ntype = "gemini"\nbase_url = "{gemini_upstream.url}"\n'
        'api_key_env = "FAKE_KEY"\n'
    )
    replicas = await start_replicas(3, BUDGET + gemini)
    spellings: list[object] = ["8", 8.0, "8.0", "8e0"]
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:
        for batch in range(5):
            calls = [
                generate(
                    http,
                    replicas[(batch * 8 + i) % 3].url,
                    {
                        "candidateCount": spellings[(batch + i) % 4],
                        "maxOutputTokens": 1_000,
                        "thinkingConfig": {"thinkingBudget": 0},
                    },
                    KEY,
                )
                for i in range(8)
            ]
            statuses += await asyncio.gather(*calls)
    # A budget stop on the Gemini routes is 400 FAILED_PRECONDITION.
    assert set(statuses) == {200, 400}
    await assert_limit_held(replicas, redis_server, gemini_upstream, statuses.count(200))
    sent = [r.body["generationConfig"]["candidateCount"] for r in gemini_upstream.fake.requests]
    assert set(sent) == {8}  # each replica sends the integer it reserved for

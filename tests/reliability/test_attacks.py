"""The hard limit holds in real dollars under attack (issue 21), on the SQLite ledger.

Each test runs an attack with the real SDK against an upstream that bills what it generated
(:attr:`FakeOpenAI.billed`, whether or not the caller read it) and lies, stalls or cuts, and
checks two totals against the hard limit: the spend the ledger committed, and — separately —
what the provider billed, priced from the usage it reports. The same attacks run on three
replicas sharing Redis in ``tests/redis/test_attack_replicas.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from conftest import RECEIPT_SECRET
from fakes.attacks import (
    MAX_OUTPUT,
    MSGS,
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
from fakes.proxy_harness import KEY, Proxy, make_settings

from aegis.core import MemoryReceiptSink, Receipt, Usage, default_pricing_table, parse_usd
from aegis.proxy import GATE, Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
LIMIT_NANOS = 200_000_000  # $0.20
BUDGET = {"per_window": [{"window": "day", "limit_usd": "0.20"}]}


def receipts(proxy: Proxy) -> list[Receipt]:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink.receipts


async def settled(proxy: Proxy, count: int) -> list[Receipt]:
    for _ in range(500):
        if len(receipts(proxy)) >= count:
            break
        await asyncio.sleep(0.01)
    return receipts(proxy)


async def committed(proxy: Proxy) -> tuple[int, int]:
    day = "day:" + datetime.now(UTC).strftime("%Y-%m-%d")
    balance = (await proxy.app[GATE].ledger.balances(tenant_id="acme", keys=[day]))[day]
    return balance.committed_nanos, balance.pending_nanos


def with_server(settings: Settings, **server: Any) -> Settings:
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, **server))


async def assert_limit_held(proxy: Proxy, upstream: FakeUpstream, admitted: int) -> None:
    """Every admitted call is settled; committed spend and the provider's bill are both
    within the hard limit, and no call was charged less than the provider billed for it."""
    found = [r for r in await settled(proxy, admitted) if r.status != "denied"]
    assert len(found) == admitted
    spent, pending = await committed(proxy)
    assert pending == 0
    billed = provider_billed(upstream.fake.billed)
    assert len(upstream.fake.billed) == admitted
    assert spent <= LIMIT_NANOS
    assert billed <= LIMIT_NANOS
    assert billed <= spent  # the ledger never charged less than the provider billed
    assert spent == sum(parse_usd(r.actual_usd) for r in receipts(proxy))


async def test_streams_left_at_the_first_token_are_charged_what_the_provider_bills(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 1: 40 reasoning streams (chat and Responses) left at their first visible token."""
    openai_upstream.fake.default = REASONING
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    sdk = proxy.client()
    statuses = []
    for i in range(40):
        leave = leave_chat_after_first_token if i % 2 else leave_responses_after_first_token
        statuses.append(await leave(sdk))
        await settled(proxy, i + 1)  # the next call is admitted against the settled books
    admitted = statuses.count(200)
    assert 0 < admitted < 10
    assert set(statuses) == {200, 429}
    await assert_limit_held(proxy, openai_upstream, admitted)
    left = [r for r in receipts(proxy) if r.status == "cancelled"]
    assert left  # the client did leave: the proxy read on to the provider's own usage
    assert {r.usage_source for r in left} == {"reported"}


async def test_a_stream_left_and_then_stalled_is_charged_its_reservation(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 1, the bound: the proxy reads on for at most ``abandoned_read_s``."""
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0.5)
    settings = with_server(
        make_settings(tmp_path, openai_upstream, budgets=BUDGET), abandoned_read_s=0.3
    )
    proxy = await start_proxy(settings)
    started = time.monotonic()
    assert await leave_chat_after_first_token(proxy.client()) == 200
    (receipt,) = await settled(proxy, 1)
    assert time.monotonic() - started < 5  # not the 40 s the whole answer would take
    assert (receipt.status, receipt.usage_source) == ("cancelled", "reservation")
    assert receipt.actual_usd == receipt.reserved_usd
    await assert_limit_held(proxy, openai_upstream, 1)


async def test_answers_cut_after_their_headers_are_charged_the_reservation(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 6: 41 non-streamed answers, each cut after the 200 headers (chat and Responses)."""
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0, cut_body_at=40)
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    sdk = proxy.client()
    statuses = [await ask_cut(sdk, responses=i % 2 == 0) for i in range(41)]
    assert set(statuses) == {502, 429}  # the body was lost; then the budget was spent
    admitted = statuses.count(502)
    await assert_limit_held(proxy, openai_upstream, admitted)
    for receipt in receipts(proxy):
        if receipt.status != "denied":
            assert receipt.usage_source == "reservation"
            assert receipt.actual_usd == receipt.reserved_usd


async def test_a_call_outliving_its_hold_ttl_keeps_its_hold(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 4: a stream and a slow answer that run 3x the hold's TTL keep their holds, so
    the budget they hold is not spent again meanwhile."""
    settings = make_settings(tmp_path, openai_upstream, budgets=BUDGET, reservation_ttl_s=1)
    proxy = await start_proxy(settings)
    sdk = proxy.client()
    # Each holds $0.048 + input: four fit in $0.20, a fifth does not.
    slow_stream = dataclasses.replace(REASONING, chunk_delay_s=3.2 / 80)
    slow_answer = dataclasses.replace(REASONING, chunk_delay_s=0, delay_s=3.2)
    openai_upstream.fake.enqueue(slow_stream, slow_stream, slow_answer, slow_answer)

    async def stream_all() -> int:
        stream = await sdk.chat.completions.create(
            model="o3", messages=MSGS, max_completion_tokens=MAX_OUTPUT, stream=True
        )
        async for _ in stream:
            pass
        return 200

    async def answer() -> int:
        await sdk.chat.completions.create(
            model="o3", messages=MSGS, max_completion_tokens=MAX_OUTPUT
        )
        return 200

    running = [asyncio.create_task(stream_all()) for _ in range(2)]
    await openai_upstream.fake.wait_for_requests(2)
    running += [asyncio.create_task(answer()) for _ in range(2)]
    await openai_upstream.fake.wait_for_requests(4)
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0)
    refused = 0
    for _ in range(5):  # at 0.5 s, 1 s ... 2.5 s: every hold has passed its 1 s TTL
        await asyncio.sleep(0.5)
        try:
            await answer()
        except openai.RateLimitError:
            refused += 1
    assert refused == 5
    assert await asyncio.gather(*running) == [200] * 4
    await assert_limit_held(proxy, openai_upstream, 4)
    assert not any(r.late for r in receipts(proxy))


async def test_candidate_counts_spelled_as_strings_or_floats_are_reserved_as_gemini_reads_them(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    """Item 2: ``candidateCount`` "8", 8.0, "8.0": Gemini generates (and bills) eight
    candidates, so eight are reserved; 40 calls, eight at a time."""
    gemini_upstream.fake.default = GeminiReply(candidates_tokens=1_000)
    settings = make_settings(tmp_path, openai_upstream, gemini=gemini_upstream, budgets=BUDGET)
    proxy = await start_proxy(settings)
    spellings: list[Any] = ["8", 8.0, "8.0", "8e0"]
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:
        for batch in range(5):
            configs = [
                {
                    "candidateCount": spellings[(batch + i) % 4],
                    "maxOutputTokens": 1_000,
                    "thinkingConfig": {"thinkingBudget": 0},
                }
                for i in range(8)
            ]
            statuses += await asyncio.gather(*(generate(http, proxy.url, c, KEY) for c in configs))
    # A budget stop on the Gemini routes is 400 FAILED_PRECONDITION (Google's clients retry 429).
    assert set(statuses) == {200, 400}
    spent, pending = await committed(proxy)
    billed = gemini_billed(gemini_upstream.fake.billed)
    assert pending == 0
    assert spent <= LIMIT_NANOS
    assert billed <= LIMIT_NANOS
    assert billed <= spent
    assert not any(r.overage for r in receipts(proxy))
    sent = [r.body["generationConfig"]["candidateCount"] for r in gemini_upstream.fake.requests]
    assert set(sent) == {8}  # the provider is sent the integer that was reserved for


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("candidateCount", "8.5"),
        ("candidateCount", "eight"),
        ("candidateCount", True),
        ("candidateCount", " 8"),
        ("candidateCount", "1e999999"),
        ("candidateCount", [8]),
        ("maxOutputTokens", "lots"),
        ("maxOutputTokens", 1e40),
    ],
)
async def test_counts_that_cannot_be_read_as_gemini_reads_them_are_refused(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
    field: str,
    value: Any,
) -> None:
    """Item 2: a count Aegis cannot bound is a 400 naming it, never a default."""
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{proxy.url}/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {field: value}},
            headers={"x-goog-api-key": KEY},
        ) as response,
    ):
        assert response.status == 400
        assert field in (await response.json())["error"]["message"]
    assert gemini_upstream.fake.requests == []


async def test_thinking_budgets_spelled_as_strings_are_reserved(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    """Item 2: ``thinkingBudget: "20000"`` reserves 20,000 thinking tokens and the margin
    Gemini may think past a budget (a 32nd), and ``"0"`` none."""
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    async with aiohttp.ClientSession() as http:
        for budget in ("20000", "0"):
            config = {"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": budget}}
            assert await generate(http, proxy.url, config, KEY) == 200
    price = default_pricing_table().get("gemini-2.5-flash")
    assert price is not None
    thinking, plain = receipts(proxy)
    assert parse_usd(thinking.reserved_usd) - parse_usd(plain.reserved_usd) == (
        price.cost_nanos(Usage(output_tokens=20_000 + 20_000 // 32))
    )


@pytest.mark.parametrize("value", ["8", 8.0, "2"])
async def test_openai_counts_must_be_integers(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy, value: Any
) -> None:
    """Item 2 on OpenAI's wire: ``n`` and the output limits as strings or floats are a 400."""
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    async with aiohttp.ClientSession() as http:
        for name in ("n", "max_tokens", "max_completion_tokens"):
            async with http.post(
                proxy.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": MSGS, name: value},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as response:
                assert response.status == 400
                assert (await response.json())["error"]["param"] == name
    assert openai_upstream.fake.requests == []


async def test_usage_reported_above_the_limit_sent_is_posted_and_stops_every_further_call(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 3: the provider is sent the output limit that was reserved for; an upstream that
    reports ten times that anyway is posted and flagged (never clipped), and from then on the
    tenant's calls see the true balance: none is admitted while over."""
    openai_upstream.fake.default = dataclasses.replace(
        REASONING, chunk_delay_s=0, completion_tokens=10 * MAX_OUTPUT
    )
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    sdk = proxy.client()
    first = await ask_cut(sdk, responses=False)
    assert first == 200
    sent = openai_upstream.fake.requests[0].body
    assert sent["max_completion_tokens"] == MAX_OUTPUT  # what was reserved for
    (over,) = receipts(proxy)
    assert over.overage
    spent, _ = await committed(proxy)
    assert spent == parse_usd(over.actual_usd) > LIMIT_NANOS  # posted in full, flagged
    statuses = await asyncio.gather(*(ask_cut(sdk, responses=i % 2 == 0) for i in range(8)))
    assert statuses == [429] * 8  # nothing is admitted while over, however small
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=1)
    assert len(openai_upstream.fake.requests) == 1
    assert (await committed(proxy))[0] == spent


LOCK_LEDGER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


async def test_charges_the_ledger_failed_to_take_are_posted_before_the_next_admission(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 5: four streams settle while another process holds the SQLite ledger locked, past
    their holds' TTL; the proxy is restarted before the lock goes. The charges were journaled,
    and the restarted proxy posts them before it admits anything for the tenant."""
    settings = make_settings(tmp_path, openai_upstream, budgets=BUDGET, reservation_ttl_s=1)
    settings = dataclasses.replace(
        settings, ledger=dataclasses.replace(settings.ledger, busy_timeout_ms=200)
    )
    first = await start_proxy(settings)
    sdk = first.client()
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=2.0 / 80)
    running = [asyncio.create_task(stream_to_the_end(sdk)) for _ in range(4)]
    await openai_upstream.fake.wait_for_requests(4)
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCK_LEDGER,
        str(settings.ledger.path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert locker.stdout is not None
    assert locker.stdin is not None
    assert await locker.stdout.readline() == b"locked\n"
    assert await asyncio.gather(*running) == [200] * 4
    unsettled = await settled(first, 4)
    assert all("ledger_unsettled" in (r.error or "") for r in unsettled)
    await asyncio.sleep(1.5)  # every hold has lapsed (renewals failed too)
    await first.close()  # a restart before the ledger is back: the journal must survive it
    locker.stdin.write(b"go\n")
    await locker.wait()

    second = await start_proxy(settings)
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0)
    statuses = [await ask_cut(second.client(), responses=i % 2 == 0) for i in range(8)]
    assert 429 in statuses
    admitted = 4 + statuses.count(200)
    spent, pending = await committed(second)
    billed = provider_billed(openai_upstream.fake.billed)
    assert len(openai_upstream.fake.billed) == admitted
    assert pending == 0
    assert spent <= LIMIT_NANOS
    assert billed <= LIMIT_NANOS
    assert billed <= spent
    charged = [r for r in unsettled + receipts(second) if r.status != "denied"]
    assert spent == sum(parse_usd(r.actual_usd) for r in charged)
    assert not second.app[GATE].unposted
    assert (tmp_path / "receipts.unposted.jsonl").read_bytes() == b""  # nothing owed: emptied


def video_part(**metadata: Any) -> dict[str, Any]:
    """A few kilobytes of inline video (Gemini bills its frames, not its bytes)."""
    part: dict[str, Any] = {"inlineData": {"mimeType": "video/mp4", "data": "AAAA" * 500}}
    if metadata:
        part["videoMetadata"] = metadata
    return part


async def ask_video(http: aiohttp.ClientSession, proxy: Proxy, part: dict[str, Any]) -> int:
    async with http.post(
        f"{proxy.url}/v1beta/models/gemini-2.5-flash:generateContent",
        json={
            "contents": [{"role": "user", "parts": [part, {"text": "what happens?"}]}],
            "generationConfig": {"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 0}},
        },
        headers={"x-goog-api-key": KEY},
    ) as response:
        await response.read()
        return response.status


async def test_inline_video_is_reserved_by_its_frames_not_its_bytes(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    """Item 7: 2 KB of inline video sampled at 24 fps for 10 s is 241 frames: Google bills
    241 x 258 tokens plus 10 s of audio. It is reserved that way when its clip is bounded,
    and by the context window (more than this budget) when it is not."""
    billed_prompt = 241 * 258 + 10 * 32 + 10
    gemini_upstream.fake.default = GeminiReply(prompt_tokens=billed_prompt, candidates_tokens=50)
    settings = make_settings(tmp_path, openai_upstream, gemini=gemini_upstream, budgets=BUDGET)
    proxy = await start_proxy(settings)
    clip = video_part(fps=24, startOffset="0s", endOffset="10s")
    async with aiohttp.ClientSession() as http:
        statuses = [await ask_video(http, proxy, clip) for _ in range(14)]
        assert set(statuses) == {200, 400}  # the Gemini routes' budget stop
        # Unbounded clips: only the context window bounds them, beyond a $0.20 budget.
        assert await ask_video(http, proxy, video_part(fps=24)) == 400
        assert await ask_video(http, proxy, video_part(fps="30")) == 400
    spent, pending = await committed(proxy)
    billed = gemini_billed(gemini_upstream.fake.billed)
    assert len(gemini_upstream.fake.billed) == statuses.count(200)
    assert pending == 0
    assert spent <= LIMIT_NANOS
    assert billed <= LIMIT_NANOS
    assert billed <= spent
    assert not any(r.overage for r in receipts(proxy))


async def test_the_proxy_ships_every_checkpoint_to_its_second_sink(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 10: ``[receipts] checkpoint_copy`` gets each checkpoint the trail writes (here:
    the closing one), so a tail cut with the trail's own checkpoints is still caught."""
    copy = tmp_path / "other-volume" / "checkpoints.jsonl"
    settings = make_settings(tmp_path, openai_upstream, receipts="file")
    settings = dataclasses.replace(
        settings, receipts=dataclasses.replace(settings.receipts, checkpoint_copy=copy)
    )
    proxy = await start_proxy(settings)
    sdk = proxy.client()
    for _ in range(3):
        await sdk.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=5)
    await proxy.close()
    own = (tmp_path / "receipts" / "receipts.checkpoints.jsonl").read_bytes()
    assert copy.read_bytes() == own
    assert json.loads(own.splitlines()[-1])["size"] == 3


async def test_two_replicas_trails_swapped_do_not_verify(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    """Item 10: two replicas from one folder write trails ``receipts`` and ``receipts.2``;
    each chain names its trail, so the two folders swapped are reported, not INTACT."""
    settings = make_settings(tmp_path, openai_upstream, receipts="file")
    replicas = [await start_proxy(settings), await start_proxy(settings)]
    for replica in replicas:
        await replica.client().chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, max_tokens=5
        )
        await replica.close()
    first, second = tmp_path / "receipts", tmp_path / "receipts.2"
    env = {**os.environ, "AEGIS_RECEIPT_KEYS": "aegis-1:env:SECRET", "SECRET": RECEIPT_SECRET}

    def verify(trail: Path) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "aegis.core.cli", "verify", str(trail)]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    assert [verify(first).returncode, verify(second).returncode] == [0, 0]
    first.rename(tmp_path / "swap")
    second.rename(first)
    (tmp_path / "swap").rename(second)
    for trail in (first, second):
        swapped = verify(trail)
        assert swapped.returncode != 0, swapped.stdout
        assert "trails swapped or moved" in swapped.stdout

"""Load against budgets that run out half way: no 5xx, no leaked hold, ledger = receipts.

Runs in CI; set AEGIS_SKIP_LOAD_TEST=1 to skip it locally (an explicit opt-out, reported as a
skip, never silent).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY, ProxyProcess, free_port

from aegis.core import SqliteLedger, parse_usd
from aegis.proxy import hash_key

pytestmark = pytest.mark.skipif(
    os.environ.get("AEGIS_SKIP_LOAD_TEST") == "1", reason="AEGIS_SKIP_LOAD_TEST=1 was set"
)
REQUESTS, CONCURRENCY = 2_000, 200
LIMIT_USD = "0.008"  # about half of what 2,000 calls of this size cost


@pytest.fixture
async def proxy(tmp_path: Path, openai_upstream: FakeUpstream) -> AsyncIterator[ProxyProcess]:
    port = free_port()
    config = tmp_path / "aegis.toml"
    config.write_text(
        f"[server]\nport = {port}\n"
        '[ledger]\npath = "ledger.db"\nsynchronous = "normal"\n'
        '[receipts]\nsink = "file"\npath = "receipts"\ndurability = "group"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{openai_upstream.base_url}"\n'
        'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
        "[tenants.acme.budgets]\n"
        f'per_window = [{{ window = "month", limit_usd = "{LIMIT_USD}" }}]\n'
    )
    process = ProxyProcess(
        config, port, {"FAKE_KEY": "sk", "AEGIS_RECEIPT_SECRET": "l" * 32}, tmp_path / "proxy.log"
    )
    try:
        yield await process.start()
    finally:
        process.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_burst_that_exhausts_the_budget_leaks_nothing(
    tmp_path: Path, proxy: ProxyProcess
) -> None:
    rng = random.Random(11)
    statuses: Counter[int] = Counter()
    queue = iter(range(REQUESTS))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for i in queue:
                stream = rng.random() < 0.5
                body = {
                    "model": "gpt-4o-mini",
                    "stream": stream,
                    "max_tokens": rng.randrange(10, 60),
                    "messages": [{"role": "user", "content": f"request {i}"}],
                }
                async with http.post(
                    proxy.url + "/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {KEY}"},
                ) as response:
                    await response.read()
                    statuses[response.status] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    assert proxy.process is not None
    rss = rss_mb(proxy.process.pid)
    assert set(statuses) <= {200, 429}, statuses  # no 5xx, nothing unexpected
    assert statuses[200] > REQUESTS // 4
    assert statuses[429] > REQUESTS // 4  # the budget did run out
    assert rss < 250, f"proxy RSS {rss:.0f} MB after the burst"

    proxy.signal(15)  # SIGTERM: drain and flush the trail
    assert proxy.wait() == 0
    ledger = SqliteLedger(tmp_path / "ledger.db")
    statement = await ledger.statement(tenant_id="acme")
    await ledger.close()
    assert statement.holds == ()
    (month,) = statement.balances.values()
    receipts = [
        json.loads(line)
        for path in sorted((tmp_path / "receipts").glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.startswith('{"')
    ]
    calls = [r for r in receipts if "receipt_id" in r]
    assert len(calls) == REQUESTS  # one receipt per request, allowed or denied
    assert sum(1 for r in calls if r["decision"]["allowed"]) == statuses[200]
    assert month.pending_nanos == 0
    assert month.committed_nanos == sum(parse_usd(r["actual_usd"]) for r in calls)
    assert month.committed_nanos <= parse_usd(LIMIT_USD)

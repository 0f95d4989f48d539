"""``aegis-proxy serve --workers 2``: two processes on one port share one SQLite ledger (the
budget stays exact), each write a trail of their own that verifies with the others, and a
reload or a drain reaches every worker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.proxy_harness import free_port

from aegis.core import SqliteLedger, parse_usd
from aegis.proxy import hash_key, new_key

PROXY = [sys.executable, "-m", "aegis.proxy"]
KEY = new_key()
LATE_KEY = new_key()
LIMIT = "0.001"


def write_config(path: Path, upstream: FakeUpstream, port: int, late: bool = False) -> None:
    late_tenant = f'[tenants.late]\napi_keys = ["{hash_key(LATE_KEY)}"]\n' if late else ""
    path.write_text(
        f"[server]\nport = {port}\ndrain_timeout_s = 10\n"
        f'[ledger]\npath = "ledger.db"\n'
        f'[receipts]\nsink = "file"\npath = "receipts"\nkey_id = "workers"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
        f'[tenants.acme.budgets]\nper_window = [{{window = "day", limit_usd = "{LIMIT}"}}]\n'
        f"{late_tenant}"
    )


async def chat(url: str, i: int, key: str = KEY, **body: Any) -> int:
    # A connection of its own per call, so the kernel spreads them over the workers.
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello workers"}],
        "max_tokens": 16,
        **body,
    }
    headers = {"Authorization": f"Bearer {key}", "x-request-id": f"w-{i:03d}"}
    connector = aiohttp.TCPConnector(force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.post(url + "/v1/chat/completions", json=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


def trail_receipts(trail: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(trail.glob("receipts-*.jsonl")):
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in found if "seq" in r]


async def test_two_workers_share_the_budget_and_write_trails_that_verify_together(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    port = free_port()
    config = tmp_path / "aegis.toml"
    write_config(config, openai_upstream, port)
    env = {"FAKE_KEY": "sk-upstream", "AEGIS_RECEIPT_SECRET": "w" * 32, "PATH": "/usr/bin:/bin"}
    log = (tmp_path / "proxy.log").open("wb")
    supervisor = subprocess.Popen(
        [*PROXY, "serve", "--config", str(config), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            with contextlib.suppress(aiohttp.ClientError):
                async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as r:
                    if r.status == 200 and (tmp_path / "receipts.2").exists():
                        break
            await asyncio.sleep(0.05)
        statuses = Counter(await asyncio.gather(*(chat(url, i) for i in range(200))))
        assert set(statuses) <= {200, 429}, statuses
        assert statuses[200] > 0
        assert statuses[429] > 0  # the shared budget ran out

        # A reload reaches every worker: a tenant added to the file can call through all.
        write_config(config, openai_upstream, port, late=True)
        supervisor.send_signal(signal.SIGHUP)
        for round_ in range(100):
            ids = range(1000 + 20 * round_, 1020 + 20 * round_)
            late = await asyncio.gather(*(chat(url, i, LATE_KEY) for i in ids))
            if set(late) == {200}:
                break
            await asyncio.sleep(0.1)
        assert set(late) == {200}

        # A drain reaches every worker: a slow call in flight still completes.
        openai_upstream.fake.enqueue(Reply(text="slow but whole", delay_s=1.0))
        slow = asyncio.create_task(chat(url, 900, LATE_KEY))
        await asyncio.sleep(0.3)
        supervisor.send_signal(signal.SIGTERM)
        assert await slow == 200
        assert supervisor.wait(timeout=30) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        log.close()

    trails = [tmp_path / "receipts", tmp_path / "receipts.2"]
    receipts = [r for t in trails for r in trail_receipts(t)]
    assert all(trail_receipts(t) for t in trails)  # both workers served calls
    acme = sorted(r["request_id"] for r in receipts if r["tenant_id"] == "acme")
    assert acme == [f"w-{i:03d}" for i in range(200)]  # one receipt per call, none twice
    verify = subprocess.run(
        [sys.executable, "-m", "aegis.core.cli", "verify", "--trails", *map(str, trails)],
        env={**env, "AEGIS_RECEIPT_KEYS": "workers:env:AEGIS_RECEIPT_SECRET"},
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    ledger = SqliteLedger(tmp_path / "ledger.db")
    try:
        statement = await ledger.statement(tenant_id="acme")
    finally:
        await ledger.close()
    (day,) = [b for k, b in statement.balances.items() if k.startswith("day:")]
    assert day.pending_nanos == 0
    assert day.committed_nanos == sum(
        parse_usd(r["actual_usd"]) for r in receipts if r["tenant_id"] == "acme"
    )
    assert day.committed_nanos <= parse_usd(LIMIT)


def test_the_proxy_serves_on_uvloop_unless_told_otherwise() -> None:
    import uvloop

    from aegis.proxy.__main__ import event_loop

    for choice, kind in (("auto", uvloop.Loop), ("uvloop", uvloop.Loop)):
        loop = event_loop(choice)
        assert isinstance(loop, kind)
        loop.close()
    plain = event_loop("asyncio")
    assert not isinstance(plain, uvloop.Loop)
    plain.close()


def test_workers_refuse_a_ledger_they_would_not_share(tmp_path: Path) -> None:
    config = tmp_path / "aegis.toml"
    config.write_text('[ledger]\nbackend = "memory"\n')
    done = subprocess.run(
        [*PROXY, "serve", "--config", str(config), "--port", str(free_port()), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert 'not "memory"' in done.stderr

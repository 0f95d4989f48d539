"""Replicas started at once from one folder and one config file (the natural way to run them
on one host): nothing they write beside each other races, each writes a trail of its own, and
the budget they share holds."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import openai
from fakes.openai_upstream import FakeUpstream
from fakes.redis_replicas import KEY, PROXY, Replica, free_port, wait_ready, write_config
from fakes.redis_server import RedisServer
from openai import AsyncOpenAI

from aegis.core import HmacSha256Signer, Keyring, RedisLedger, parse_usd, verify_trail

TENANT = '[tenants.acme.budgets]\nper_window = [{window = "day", limit_usd = "0.001"}]\n'


async def test_three_replicas_from_one_folder_start_together_and_share_one_budget(
    tmp_path: Path, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> None:
    home = tmp_path / "aegis"
    home.mkdir()
    write_config(home, free_port(), redis_server.url, openai_upstream, TENANT)
    # No receipt secret in the environment: the first replica to start generates it.
    env = {k: v for k, v in os.environ.items() if k != "AEGIS_RECEIPT_SECRET"}
    env["FAKE_KEY"] = "sk-upstream"
    replicas = []
    for n in range(3):
        port = free_port()
        log = home / f"proxy{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*PROXY, "serve", "--config", str(home / "aegis.toml"), "--port", str(port)],
                env=env,
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        replicas.append((Replica(home, process, port), log))
    try:
        for replica, log in replicas:
            await wait_ready(replica, log)
        clients = [
            AsyncOpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0, timeout=120.0)
            for r, _ in replicas
        ]

        async def ask(i: int) -> int:
            try:
                await clients[i % 3].chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hello from one folder"}],
                    max_tokens=16,
                    extra_headers={"x-request-id": f"folder-{i:03d}"},
                )
            except openai.APIStatusError as exc:
                return exc.status_code
            return 200

        statuses = Counter(await asyncio.gather(*(ask(i) for i in range(300))))
        for c in clients:
            await c.close()
    finally:
        for replica, _ in replicas:
            replica.stop()

    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] > 0
    assert statuses[429] > 0  # the budget ran out part way
    # One secret, one trail per replica, each intact.
    secrets = list(home.glob("*.secret"))
    assert len(secrets) == 1
    keyring = Keyring([HmacSha256Signer(key_id="replica", secret=secrets[0].read_text().strip())])
    # Each trail is a folder; beside it, its admission log and journal of unposted charges.
    trails = sorted(p for p in home.iterdir() if p.name.startswith("receipts") and p.is_dir())
    assert [p.name for p in trails] == ["receipts", "receipts.2", "receipts.3"]
    receipts = []
    for trail in trails:
        assert verify_trail([trail], keyring).is_intact
        for path in sorted(trail.glob("receipts-*.jsonl")):
            receipts += [json.loads(line) for line in path.read_text().splitlines()]
    receipts = [r for r in receipts if "seq" in r]
    assert sorted(r["request_id"] for r in receipts) == [f"folder-{i:03d}" for i in range(300)]
    assert Counter(r["decision"]["allowed"] for r in receipts)[True] == statuses[200]
    ledger = RedisLedger(redis_server.url, create_epoch=False)
    try:
        found = await ledger.statement(tenant_id="acme")
    finally:
        await ledger.close()
    days = [b for key, b in found.balances.items() if key.startswith("day:")]
    assert sum(b.pending_nanos for b in days) == 0
    committed = sum(b.committed_nanos for b in days)
    assert committed == sum(parse_usd(r["actual_usd"]) for r in receipts)
    assert committed <= parse_usd("0.001")
    for _, log in replicas:
        assert "Traceback" not in log.read_text()

"""The proxy killed mid-call: nothing leaks, nothing is charged twice, the trail verifies."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from fakes.attacks import REASONING, provider_billed, stream_to_the_end
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.proxy_harness import KEY, ProxyProcess, free_port
from openai import AsyncOpenAI

from aegis.core import SqliteLedger, parse_usd
from aegis.proxy import hash_key

TTL_S = 8
SECRET = "c" * 32


def config(path: Path, upstream: FakeUpstream, port: int) -> Path:
    path.write_text(
        f"[server]\nport = {port}\n"
        '[ledger]\npath = "ledger.db"\n'
        '[receipts]\nsink = "file"\npath = "receipts"\nkey_id = "crash"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{upstream.base_url}"\n'
        'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\nreservation_ttl_s = {TTL_S}\n'
        '[tenants.acme.budgets]\nper_window = [{ window = "month", limit_usd = "10" }]\n'
    )
    return path


@pytest.fixture
async def proxy(tmp_path: Path, openai_upstream: FakeUpstream) -> AsyncIterator[ProxyProcess]:
    port = free_port()
    env = {"FAKE_KEY": "sk-up", "AEGIS_RECEIPT_SECRET": SECRET}
    process = ProxyProcess(
        config(tmp_path / "aegis.toml", openai_upstream, port), port, env, tmp_path / "proxy.log"
    )
    try:
        yield await process.start()
    finally:
        process.stop()


async def chat(
    proxy: ProxyProcess, http: aiohttp.ClientSession, request_id: str, *, stream: bool = False
) -> aiohttp.ClientResponse:
    return await http.post(
        proxy.url + "/v1/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "stream": stream,
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "tell me a long story"}],
        },
        headers={"Authorization": f"Bearer {KEY}", "x-request-id": request_id},
    )


async def month_balance(db: Path) -> tuple[int, int]:
    ledger = SqliteLedger(db)
    try:
        statement = await ledger.statement(tenant_id="acme")
    finally:
        await ledger.close()
    month = [b for k, b in statement.balances.items() if k.startswith("month:")]
    return (month[0].committed_nanos, month[0].pending_nanos) if month else (0, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["mid-request", "mid-stream"])
async def test_sigkill_then_restart_receipts_and_charges_the_dead_call_once(
    tmp_path: Path, openai_upstream: FakeUpstream, proxy: ProxyProcess, stream: bool
) -> None:
    if stream:
        openai_upstream.fake.enqueue(Reply(text=" ".join(["word"] * 100), chunk_delay_s=0.1))
    else:
        openai_upstream.fake.enqueue(Reply(text="slow", delay_s=5))
    async with aiohttp.ClientSession() as http:
        await crash_and_retry(tmp_path, openai_upstream, proxy, http, stream)


async def crash_and_retry(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    proxy: ProxyProcess,
    http: aiohttp.ClientSession,
    stream: bool,
) -> None:
    if stream:
        response = await chat(proxy, http, "req-crash", stream=True)
        assert response.status == 200
        await response.content.readuntil(b"\n\n")
    else:
        pending = asyncio.create_task(chat(proxy, http, "req-crash"))
        await asyncio.sleep(0.5)  # the upstream call is in flight
    proxy.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert proxy.wait() == -signal.SIGKILL
    if stream:
        response.close()
    else:
        with pytest.raises(aiohttp.ClientError):
            await pending
    db = tmp_path / "ledger.db"
    assert (await month_balance(db))[1] > 0  # the dead call's hold is still held

    await proxy.start()  # same ledger, same trail
    # The dead call was admitted and sent: its admission record makes the restart receipt it
    # and charge its reservation (the provider may have billed all of it).
    charged, held = await month_balance(db)
    assert held == 0
    assert charged > 0
    assert time.monotonic() - killed_at < TTL_S, "the restart took longer than the TTL"
    retry = await chat(proxy, http, "req-crash")
    assert retry.status == 409  # that request id was charged: never twice
    retry.close()

    openai_upstream.fake.enqueue(Reply(text="the retried answer"))
    retry = await chat(proxy, http, "req-crash-again")
    assert retry.status == 200
    cost = parse_usd(retry.headers["x-aegis-cost-usd"])
    await retry.read()
    assert await month_balance(db) == (charged + cost, 0)

    proxy.signal(signal.SIGTERM)
    assert proxy.wait() == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    verify = subprocess.run(
        [sys.executable, "-m", "aegis.core.cli", "verify", str(tmp_path / "receipts")],
        env={**os.environ, "AEGIS_RECEIPT_KEYS": "crash:env:SECRET", "SECRET": SECRET},
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "aegis.core.cli", "show", str(tmp_path / "receipts"), "--json"],
        capture_output=True,
        text=True,
    )
    found = [json.loads(line) for line in shown.stdout.splitlines()]
    (dead,) = [r for r in found if r["request_id"] == "req-crash" and r["status"] != "denied"]
    assert (dead["status"], dead["usage_source"]) == ("cancelled", "reservation")
    assert parse_usd(dead["actual_usd"]) == charged


# Where a configuration keeps its admissions: notes in the SQLite ledger whenever the ledger is
# as durable as the receipts; a file beside the trail when it is less durable ("normal" under
# "fsync" receipts, which a power cut would separate).
JOURNALS = {
    "notes-fsync": ("full", "fsync", "notes"),
    "notes-group": ("full", "group", "notes"),
    "notes-normal-group": ("normal", "group", "notes"),
    "file-normal-fsync": ("normal", "fsync", "file"),
}


def durability_config(
    tmp_path: Path, upstream: FakeUpstream, port: int, synchronous: str, durability: str
) -> Path:
    path = config(tmp_path / "aegis.toml", upstream, port)
    text = path.read_text().replace('limit_usd = "10"', 'limit_usd = "0.20"')
    text = text.replace(
        'path = "ledger.db"\n', f'path = "ledger.db"\nsynchronous = "{synchronous}"\n'
    )
    path.write_text(
        text.replace('key_id = "crash"\n', f'key_id = "crash"\ndurability = "{durability}"\n')
    )
    return path


def journals_left(tmp_path: Path) -> tuple[int, int]:
    """Admissions left unsettled (notes in the ledger, admitted lines in the file)."""
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        notes = conn.execute("SELECT count(*) FROM aegis_notes").fetchone()[0]
    log = tmp_path / "receipts.admissions.jsonl"
    lines = log.read_bytes().splitlines() if log.exists() else []
    admitted = {json.loads(line)["receipt_id"] for line in lines if b'"admitted"' in line}
    settled = {json.loads(line)["receipt_id"] for line in lines if b'"settled"' in line}
    return notes, len(admitted - settled)


async def kill_with_four_in_flight(proxy: ProxyProcess, openai_upstream: FakeUpstream) -> None:
    openai_upstream.fake.default = dataclasses.replace(REASONING, chunk_delay_s=0.5)
    await proxy.start()
    async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key=KEY, max_retries=0) as sdk:
        calls = [asyncio.create_task(stream_to_the_end(sdk)) for _ in range(4)]
        await asyncio.wait_for(openai_upstream.fake.wait_for_requests(4), 30)
        proxy.signal(signal.SIGKILL)
        assert proxy.wait() == -signal.SIGKILL
        await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.parametrize("journal", list(JOURNALS))
async def test_kill_9_with_calls_in_flight_leaves_each_receipted_and_charged(
    tmp_path: Path, openai_upstream: FakeUpstream, journal: str
) -> None:
    """Issue 21, item 9: four calls in flight when the proxy is killed before its first
    receipt. The trail it leaves is empty, not tampered; the restart finds their admission
    records, receipts each and charges its reservation, so the provider's bill is covered."""
    synchronous, durability, kept = JOURNALS[journal]
    port = free_port()
    # "group" writes the admissions without an fsync: kill -9 must still find them.
    path = durability_config(tmp_path, openai_upstream, port, synchronous, durability)
    env = {"FAKE_KEY": "sk-up", "AEGIS_RECEIPT_SECRET": SECRET}
    proxy = ProxyProcess(path, port, env, tmp_path / "proxy.log")
    keys = {**os.environ, "AEGIS_RECEIPT_KEYS": "crash:env:SECRET", "SECRET": SECRET}
    verify = [sys.executable, "-m", "aegis.core.cli", "verify", str(tmp_path / "receipts")]
    try:
        await kill_with_four_in_flight(proxy, openai_upstream)
        empty = subprocess.run(verify, env=keys, capture_output=True, text=True)
        assert empty.returncode == 0, empty.stdout + empty.stderr  # empty, not TAMPERED
        assert "holds no receipts" in empty.stdout
        # Each admission is where the configuration keeps it, and only there.
        assert journals_left(tmp_path) == ((4, 0) if kept == "notes" else (0, 4))

        await proxy.start()
        committed, pending = await month_balance(tmp_path / "ledger.db")
        billed = provider_billed(openai_upstream.fake.billed)
        assert len(openai_upstream.fake.billed) == 4
        assert pending == 0
        assert billed <= committed <= 200_000_000
        assert journals_left(tmp_path) == (0, 0)
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0
    finally:
        proxy.stop()
    after = subprocess.run(verify, env=keys, capture_output=True, text=True)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "receipts:    4 verified" in after.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "aegis.core.cli", "show", str(tmp_path / "receipts"), "--json"],
        capture_output=True,
        text=True,
    )
    found = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["usage_source"] for r in found] == ["reservation"] * 4
    assert sum(parse_usd(r["actual_usd"]) for r in found) == committed


@pytest.mark.parametrize(
    ("before", "after"),
    [("file-normal-fsync", "notes-fsync"), ("notes-fsync", "file-normal-fsync")],
)
async def test_a_restart_under_another_durability_recovers_the_other_journals_calls(
    tmp_path: Path, openai_upstream: FakeUpstream, before: str, after: str
) -> None:
    """Calls a crash left in one journal are recovered by a restart whose configuration keeps
    admissions in the other (an upgrade, or a changed ``synchronous``): never left behind."""
    port = free_port()
    env = {"FAKE_KEY": "sk-up", "AEGIS_RECEIPT_SECRET": SECRET}
    path = durability_config(tmp_path, openai_upstream, port, *JOURNALS[before][:2])
    proxy = ProxyProcess(path, port, env, tmp_path / "proxy.log")
    try:
        await kill_with_four_in_flight(proxy, openai_upstream)
        assert journals_left(tmp_path) == ((4, 0) if before.startswith("notes") else (0, 4))
        durability_config(tmp_path, openai_upstream, port, *JOURNALS[after][:2])
        await proxy.start()
        committed, pending = await month_balance(tmp_path / "ledger.db")
        assert pending == 0
        assert provider_billed(openai_upstream.fake.billed) <= committed <= 200_000_000
        assert journals_left(tmp_path) == (0, 0)
        assert not (tmp_path / "receipts.admissions.jsonl").exists() or after.startswith("file")
        proxy.signal(signal.SIGTERM)
        assert proxy.wait() == 0
    finally:
        proxy.stop()
    shown = subprocess.run(
        [sys.executable, "-m", "aegis.core.cli", "show", str(tmp_path / "receipts"), "--json"],
        capture_output=True,
        text=True,
    )
    found = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(r["status"], r["usage_source"]) for r in found] == [("cancelled", "reservation")] * 4
    assert sum(parse_usd(r["actual_usd"]) for r in found) == committed

"""The invariant: with upper-bound estimates, committed spend never passes a hard-stop limit."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

from aegis.core import (
    BudgetExceeded,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    Ledger,
    ManualClock,
    MemoryReceiptSink,
    SqliteLedger,
    Usage,
    default_pricing_table,
    parse_usd,
)

LIMIT_USD = "0.05"
PRICE = default_pricing_table().price("gpt-4o")


async def test_hundreds_of_concurrent_calls_never_overspend(
    ledger: Ledger, clock: ManualClock
) -> None:
    sink = MemoryReceiptSink()
    gate = Gate(
        policy_provider=InMemoryPolicyProvider(
            {"acme": {"budgets": {"per_window": [{"window": "day", "limit_usd": LIMIT_USD}]}}}
        ),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k", secret=b"k" * 32),
        sink=sink,
        clock=clock,
    )
    rng = random.Random(1234)
    denied = 0

    async def one(i: int) -> None:
        nonlocal denied
        inp, out = rng.randrange(10, 2000), rng.randrange(10, 2000)
        used = Usage(input_tokens=rng.randrange(1, inp + 1), output_tokens=rng.randrange(out + 1))
        await asyncio.sleep(0)
        try:
            async with gate.call(
                tenant_id="acme",
                request_id=f"r{i}",
                provider="openai",
                model="gpt-4o",
                input_tokens=inp,
                max_output_tokens=out,
            ) as c:
                await asyncio.sleep(rng.random() / 1000)
                c.record(used)
        except BudgetExceeded:
            denied += 1

    await asyncio.gather(*(one(i) for i in range(400)))
    allowed = [r for r in sink.receipts if r.decision.allowed]
    charged = sum(parse_usd(r.actual_usd) for r in allowed)
    balance = (await ledger.balances(tenant_id="acme", keys=["day:2026-11-26"]))["day:2026-11-26"]
    assert denied > 0, "the budget must actually be contended for the test to mean anything"
    assert len(allowed) + denied == 400 == len(sink.receipts)
    assert balance.pending_nanos == 0
    assert balance.committed_nanos == charged
    assert charged <= parse_usd(LIMIT_USD)


def test_several_processes_share_one_sqlite_budget_exactly(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    SqliteLedger(db)  # create the schema once, before the race
    worker = Path(__file__).with_name("ledger_worker.py")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                str(db),
                str(seed),
                "150",
                str(tmp_path / f"out{seed}.json"),
            ]
        )
        for seed in range(4)
    ]
    assert [p.wait(timeout=240) for p in procs] == [0, 0, 0, 0]
    outcomes = [json.loads((tmp_path / f"out{seed}.json").read_text()) for seed in range(4)]
    charged = sum(parse_usd(c) for o in outcomes for c in o["charged_usd"])
    denied = sum(o["denied"] for o in outcomes)
    assert denied > 0
    assert sum(len(o["charged_usd"]) for o in outcomes) + denied == 600

    async def read() -> tuple[int, int]:
        from datetime import UTC, datetime

        ledger = SqliteLedger(db)
        key = "month:" + datetime.now(UTC).strftime("%Y-%m")
        balance = (await ledger.balances(tenant_id="acme", keys=[key]))[key]
        await ledger.close()
        return balance.committed_nanos, balance.pending_nanos

    committed, pending = asyncio.run(read())
    assert pending == 0
    assert committed == charged
    assert committed <= parse_usd(LIMIT_USD)

"""Issue 10: what rate limits and budget alerts cost the Gate per call.

Admit + settle throughput on the memory and SQLite (synchronous=normal, inline) ledgers for
three policies: budgets only; budgets with rate limits (rpm, tpm, max_in_flight: three more
accounts in the same hold); budgets with alert thresholds (a balance read after each charge
until a threshold has fired in the window).

Run: uv run python -m bench.limits
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis.core import (
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    Ledger,
    MemoryLedger,
    MemoryReceiptSink,
    SqliteLedger,
    Usage,
    default_pricing_table,
)
from bench._report import report

BUDGETS: dict[str, Any] = {
    "per_run_usd": "1000",
    "per_window": [{"window": "day", "limit_usd": "100000"}],
}
POLICIES: dict[str, dict[str, Any]] = {
    "budgets": {"budgets": BUDGETS},
    "budgets + limits": {
        "budgets": BUDGETS,
        "limits": [{"rpm": 10**9, "tpm": 10**12, "max_in_flight": 10**6}],
    },
    "budgets + alerts": {
        "budgets": {
            **BUDGETS,
            "per_window": [{"window": "day", "limit_usd": "100000", "alert_at": [0.5, 0.8]}],
        }
    },
}


async def calls_per_s(make_ledger: Callable[[], Ledger], policy: dict[str, Any], n: int) -> float:
    ledger = make_ledger()
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": policy}),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k", secret="s" * 32),
        sink=MemoryReceiptSink(),
    )
    ids = iter(range(n))
    usage = Usage(input_tokens=900, output_tokens=200)

    async def worker() -> None:
        for i in ids:
            permit = await gate.admit(
                tenant_id="acme",
                request_id=f"r{i}",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1000,
                max_output_tokens=300,
            )
            await gate.settle(permit, usage=usage)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(32)))
    elapsed = time.perf_counter() - start
    await ledger.close()
    return n / elapsed


async def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ledgers: dict[str, tuple[Callable[[], Ledger], int]] = {
            "memory": (MemoryLedger, 20_000),
            "sqlite (normal)": (
                lambda: SqliteLedger(
                    Path(tmp) / f"l{time.monotonic_ns()}.db", synchronous="normal"
                ),
                5_000,
            ),
        }
        for ledger_name, (make, n) in ledgers.items():
            base = 0.0
            for policy_name, policy in POLICIES.items():
                best = max([await calls_per_s(make, policy, n) for _ in range(3)])
                base = base or best
                rows.append(
                    {
                        "ledger": ledger_name,
                        "policy": policy_name,
                        "calls_per_s": round(best),
                        "vs_budgets": f"{best / base:.2f}x",
                    }
                )
    report(
        "limits",
        rows,
        note="admit + settle, 32 tasks, in-memory receipts; best of 3 runs",
    )


if __name__ == "__main__":
    asyncio.run(main())

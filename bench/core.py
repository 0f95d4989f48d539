"""aegis-core: ledger reserve+commit throughput and the in-memory Gate path per call.

Run: uv run python -m bench.core
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from aegis.core import (
    Account,
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
from aegis.core.admission import budget_accounts
from bench._report import report

ACCOUNTS = [
    Account(key="run:x", budget="per_run", limit_nanos=10**18, hard_stop=True, expires_at=4e9),
    Account(key="day:d", budget="day", limit_nanos=10**18, hard_stop=True, expires_at=4e9),
    Account(key="month:m", budget="month", limit_nanos=10**18, hard_stop=True, expires_at=4e9),
]


async def ledger_ops(ledger: Ledger, n: int, concurrency: int) -> float:
    """Reserve+commit pairs per second with ``concurrency`` tasks in flight."""
    counter = iter(f"c{concurrency}-{i}" for i in range(n))

    async def worker() -> None:
        for i in counter:
            await ledger.reserve(
                tenant_id="t", hold_id=i, amount_nanos=100, accounts=ACCOUNTS, ttl_s=60
            )
            await ledger.commit(tenant_id="t", hold_id=i, amount_nanos=60)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


def make_gate() -> tuple[Gate, MemoryReceiptSink]:
    sink = MemoryReceiptSink()
    policy = {
        "budgets": {
            "per_run_usd": "1000",
            "per_window": [
                {"window": "minute", "limit_usd": "100000"},
                {"window": "day", "limit_usd": "100000"},
                {"window": "month", "limit_usd": "100000"},
            ],
        },
        "model": {"allow_models": ["gpt-4o*", "gemini-*"]},
    }
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": policy}),
        ledger=MemoryLedger(),
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k", secret="s" * 32),
        sink=sink,
    )
    return gate, sink


async def gate_path_us(n: int) -> tuple[float, float]:
    """Median µs per admit+settle and per full gate.call (incl. sealing the receipt)."""
    gate, sink = make_gate()
    usage = Usage(input_tokens=900, cached_input_tokens=100, output_tokens=200)
    samples_call = []
    for rep in range(5):
        sink.receipts.clear()
        start = time.perf_counter()
        for i in range(n):
            async with gate.call(
                tenant_id="acme",
                request_id=f"{rep}-{i}",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=1000,
                max_output_tokens=500,
            ) as call:
                call.record(usage)
        samples_call.append((time.perf_counter() - start) / n * 1e6)
    # The same path without receipts, to show what sealing costs.
    ledger = gate.ledger
    policies = gate.policy_provider
    price = gate.pricing.price("gpt-4o-mini")
    samples_bare = []
    for rep in range(5):
        start = time.perf_counter()
        for i in range(n):
            policy = await policies.get_policy(tenant_id="acme")
            assert policy is not None
            accounts = budget_accounts(policy, f"b{rep}-{i}", time.time())
            amount = price.worst_case_nanos(1000, 500)
            await ledger.reserve(
                tenant_id="acme",
                hold_id=f"b{rep}-{i}",
                amount_nanos=amount,
                accounts=accounts,
                ttl_s=60,
            )
            await ledger.commit(
                tenant_id="acme", hold_id=f"b{rep}-{i}", amount_nanos=price.cost_nanos(usage)
            )
        samples_bare.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples_bare), statistics.median(samples_call)


async def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        setups: list[tuple[str, Ledger, int]] = [
            ("MemoryLedger", MemoryLedger(), 50_000),
            ("SqliteLedger synchronous=full", SqliteLedger(Path(tmp) / "f.db"), 2_000),
            (
                "SqliteLedger synchronous=normal",
                SqliteLedger(Path(tmp) / "n.db", synchronous="normal"),
                5_000,
            ),
        ]
        for name, ledger, n in setups:
            for concurrency in (1, 32):
                ops = await ledger_ops(ledger, n, concurrency)
                rows.append(
                    {
                        "what": f"{name}, {concurrency} in flight",
                        "reserve+commit/s": f"{ops:,.0f}",
                        "µs per pair": f"{1e6 / ops:,.1f}",
                    }
                )
            await ledger.close()
    bare, full = await gate_path_us(20_000)
    rows.append(
        {
            "what": "Gate path, memory ledger (policy, estimate, reserve, commit)",
            "reserve+commit/s": f"{1e6 / bare:,.0f}",
            "µs per pair": f"{bare:.1f}",
        }
    )
    rows.append(
        {
            "what": "gate.call incl. signed receipt to memory sink",
            "reserve+commit/s": f"{1e6 / full:,.0f}",
            "µs per pair": f"{full:.1f}",
        }
    )
    report("core", rows, note="goal: in-memory Gate path under 50 µs per call on one core")


if __name__ == "__main__":
    asyncio.run(main())

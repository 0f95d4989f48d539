"""One process of the multi-process ledger test: many concurrent governed calls, one SQLite file.

Usage: python ledger_worker.py DB SEED CALLS OUT.json
Writes the charged nano-USD of every allowed call and the number of denials.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

from aegis.core import (
    BudgetExceeded,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    MemoryReceiptSink,
    SqliteLedger,
    Usage,
    default_pricing_table,
)

POLICY = {"budgets": {"per_window": [{"window": "month", "limit_usd": "0.05"}]}}


async def main(db: str, seed: int, calls: int) -> dict[str, object]:
    rng = random.Random(seed)
    sink = MemoryReceiptSink()
    # Half the processes run the ledger inline (synchronous=normal), half on its worker thread.
    ledger = SqliteLedger(db, synchronous="normal" if seed % 2 else "full")
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": POLICY}),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k", secret="s" * 32),
        sink=sink,
    )
    denied = 0

    async def one(i: int) -> None:
        nonlocal denied
        inp, out_max = rng.randrange(10, 2000), rng.randrange(10, 2000)
        used = Usage(
            input_tokens=rng.randrange(1, inp + 1), output_tokens=rng.randrange(0, out_max + 1)
        )
        await asyncio.sleep(rng.random() / 100)
        try:
            async with gate.call(
                tenant_id="acme",
                request_id=f"{seed}-{i}",
                provider="openai",
                model="gpt-4o",
                input_tokens=inp,
                max_output_tokens=out_max,
            ) as c:
                await asyncio.sleep(rng.random() / 100)
                c.record(used)
        except BudgetExceeded:
            denied += 1

    await asyncio.gather(*(one(i) for i in range(calls)))
    await ledger.close()
    charged = [r.actual_usd for r in sink.receipts if r.decision.allowed]
    return {"charged_usd": charged, "denied": denied}


if __name__ == "__main__":
    outcome = asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    Path(sys.argv[4]).write_text(json.dumps(outcome))

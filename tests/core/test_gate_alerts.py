"""Budget alerts from the Gate: each threshold once per window, receipted, never failing calls."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from aegis.core import (
    BudgetAlert,
    FileReceiptSink,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    Keyring,
    Ledger,
    ManualClock,
    MemoryLedger,
    MemoryReceiptSink,
    Receipt,
    ReceiptSink,
    Usage,
    default_pricing_table,
    verify_trail,
)

SIGNER = HmacSha256Signer(key_id="k1", secret=b"s" * 32)
# gpt-4o-mini input is 150 nano-USD a token: 1,000 input tokens cost $0.00015.
CALL_NANOS = 150_000
SOFT_DAY = {
    "budgets": {
        "per_window": [
            {"window": "day", "limit_usd": "0.001", "hard_stop": False, "alert_at": [0.5, 0.8, 1]}
        ]
    }
}


def make_gate(
    ledger: Ledger, clock: ManualClock, policy: dict[str, Any], sink: ReceiptSink | None = None
) -> tuple[Gate, list[BudgetAlert], list[Receipt]]:
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": policy}),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=SIGNER,
        sink=sink or MemoryReceiptSink(),
        clock=clock,
    )
    alerts: list[BudgetAlert] = []
    observed: list[Receipt] = []
    gate.on_alert = alerts.append
    gate.on_receipt = observed.append
    return gate, alerts, observed


async def call(gate: Gate, request_id: str, run_id: str | None = None) -> Receipt:
    async with gate.call(
        tenant_id="acme",
        request_id=request_id,
        run_id=run_id,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000,
        max_output_tokens=0,
    ) as governed:
        governed.record(Usage(input_tokens=1000))
    assert governed.receipt is not None
    return governed.receipt


async def test_each_threshold_fires_once_as_spend_crosses_it(
    ledger: Ledger, clock: ManualClock, tmp_path: Path
) -> None:
    sink = FileReceiptSink(tmp_path / "receipts")
    gate, alerts, observed = make_gate(ledger, clock, SOFT_DAY, sink)
    fired_after: list[list[str]] = []
    for i in range(9):  # $0.00135 spent of a $0.001 soft limit: never denied
        receipt = await call(gate, f"r{i}")
        assert receipt.decision.allowed
        fired_after.append([a.threshold_text for a in alerts])
    # 4 calls reach 50%, 6 reach 80% (0.0009), 7 reach 100% (0.00105).
    assert fired_after[2] == []
    assert fired_after[3] == ["0.5"]
    assert fired_after[5] == ["0.5", "0.8"]
    assert fired_after[6] == fired_after[8] == ["0.5", "0.8", "1"]
    first = alerts[0]
    assert (first.budget, first.account, first.hard_stop) == ("day", "day:2026-11-26", False)
    assert (first.spent_nanos, first.limit_nanos) == (4 * CALL_NANOS, 1_000_000)
    assert first.window_ends_at == "2026-11-27T00:00:00.000000Z"
    assert first.request_id == "r3"
    # Alerts are in the receipt trail (signed and chained), but are not calls to observers.
    await sink.close()
    report = verify_trail([tmp_path / "receipts"], Keyring([SIGNER]))
    assert report.problems == ()
    assert report.summary.receipts == 9 + 3
    assert len(observed) == 9
    assert all(r.status == "ok" for r in observed)


async def test_alert_receipts_name_the_budget_and_threshold(
    ledger: Ledger, clock: ManualClock
) -> None:
    sink = MemoryReceiptSink()
    gate, alerts, _ = make_gate(ledger, clock, SOFT_DAY, sink)
    for i in range(4):
        await call(gate, f"r{i}")
    alert_receipt = sink.receipts[-1]
    assert alert_receipt.status == "alert"
    assert alert_receipt.receipt_id == alerts[0].receipt_id
    assert alert_receipt.request_id == "alert:day:2026-11-26:0.5"
    assert alert_receipt.capability == "budget:alert"
    assert (alert_receipt.decision.reason, alert_receipt.decision.budget) == ("budget_alert", "day")
    assert alert_receipt.actual_usd == alert_receipt.reserved_usd == "0"
    assert alert_receipt.error == "day budget reached 50% of its limit: spent $0.0006 of $0.001"
    assert alert_receipt.policy_version == sink.receipts[0].policy_version


async def test_the_next_window_fires_again(ledger: Ledger, clock: ManualClock) -> None:
    gate, alerts, _ = make_gate(ledger, clock, SOFT_DAY)
    for i in range(4):
        await call(gate, f"a{i}")
    clock.advance(86_400)
    for i in range(4):
        await call(gate, f"b{i}")
    assert [(a.account, a.threshold_text) for a in alerts] == [
        ("day:2026-11-26", "0.5"),
        ("day:2026-11-27", "0.5"),
    ]


async def test_two_gates_on_one_ledger_fire_each_threshold_once(
    ledger: Ledger, clock: ManualClock
) -> None:
    replicas = [make_gate(ledger, clock, SOFT_DAY) for _ in range(2)]
    await asyncio.gather(*(call(replicas[i % 2][0], f"r{i}") for i in range(12)))
    fired = [a.threshold_text for _, alerts, _ in replicas for a in alerts]
    assert sorted(fired) == ["0.5", "0.8", "1"]


async def test_a_run_budget_alerts_per_run(ledger: Ledger, clock: ManualClock) -> None:
    policy = {"budgets": {"per_run_usd": "0.0003", "per_run_alert_at": ["0.5"]}}
    gate, alerts, _ = make_gate(ledger, clock, policy)
    await call(gate, "a1", run_id="run-a")
    await call(gate, "b1", run_id="run-b")
    assert [(a.budget, a.account, a.run_id) for a in alerts] == [
        ("per_run", "run:run-a", "run-a"),
        ("per_run", "run:run-b", "run-b"),
    ]
    assert alerts[0].window_ends_at is None
    assert alerts[0].threshold == Decimal("0.5")


class AlertlessLedger(MemoryLedger):
    """A ledger whose alert marks fail (a store that lost them)."""

    async def mark_alert(self, **_: object) -> bool:
        raise ConnectionError("store down")


async def test_a_failing_alert_mark_never_fails_the_call(clock: ManualClock) -> None:
    gate, alerts, _ = make_gate(AlertlessLedger(clock=clock), clock, SOFT_DAY)
    receipts = [await call(gate, f"r{i}") for i in range(8)]
    assert [r.status for r in receipts] == ["ok"] * 8
    assert alerts == []

"""Charges the ledger failed to take are journaled and posted before the tenant's next call."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from aegis.core import (
    Account,
    Balance,
    Gate,
    HmacSha256Signer,
    Hold,
    InMemoryPolicyProvider,
    LedgerAdmissions,
    LedgerUnavailable,
    ManualClock,
    MemoryReceiptSink,
    Settlement,
    SqliteLedger,
    Statement,
    UnpostedCharge,
    UnpostedJournal,
    Usage,
    default_pricing_table,
)
from aegis.core.recovery import post_all_owed, recover_admissions


class FlakyLedger:
    """A real SQLite ledger whose commits fail while ``down`` (an outage at settlement)."""

    def __init__(self, inner: SqliteLedger) -> None:
        self.inner = inner
        self.down = False

    async def reserve(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        return await self.inner.reserve(
            tenant_id=tenant_id,
            hold_id=hold_id,
            amount_nanos=amount_nanos,
            accounts=accounts,
            ttl_s=ttl_s,
        )

    async def commit(
        self, *, tenant_id: str, hold_id: str, amount_nanos: int, tokens: int | None = None
    ) -> Settlement:
        if self.down:
            raise LedgerUnavailable("disk full")
        return await self.inner.commit(
            tenant_id=tenant_id, hold_id=hold_id, amount_nanos=amount_nanos, tokens=tokens
        )

    async def release(self, *, tenant_id: str, hold_id: str) -> None:
        await self.inner.release(tenant_id=tenant_id, hold_id=hold_id)

    async def renew(self, *, tenant_id: str, hold_id: str, ttl_s: float) -> Hold:
        return await self.inner.renew(tenant_id=tenant_id, hold_id=hold_id, ttl_s=ttl_s)

    async def balances(self, *, tenant_id: str, keys: Sequence[str]) -> dict[str, Balance]:
        return await self.inner.balances(tenant_id=tenant_id, keys=keys)

    async def statement(self, *, tenant_id: str) -> Statement:
        return await self.inner.statement(tenant_id=tenant_id)

    async def mark_alert(
        self, *, tenant_id: str, key: str, threshold: str, expires_at: float
    ) -> bool:
        return await self.inner.mark_alert(
            tenant_id=tenant_id, key=key, threshold=threshold, expires_at=expires_at
        )

    async def close(self) -> None:
        await self.inner.close()


def gate_for(ledger: FlakyLedger, journal: UnpostedJournal, clock: ManualClock) -> Gate:
    return Gate(
        policy_provider=InMemoryPolicyProvider(
            {"acme": {"budgets": {"per_run_usd": "0.0015"}, "reservation_ttl_s": 1}}
        ),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k1", secret=b"s" * 32),
        sink=MemoryReceiptSink(),
        clock=clock,
        journal=journal,
    )


async def run_call(gate: Gate, request_id: str) -> None:
    async with gate.call(
        tenant_id="acme",
        request_id=request_id,
        run_id="run",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1_000,
        max_output_tokens=1_000,
    ) as governed:
        governed.record(Usage(input_tokens=1_000, output_tokens=1_000))


async def test_an_unposted_charge_survives_a_restart_and_is_posted_before_the_next_call(
    tmp_path: Path, clock: ManualClock
) -> None:
    journal_path = tmp_path / "unposted.jsonl"
    ledger = FlakyLedger(SqliteLedger(tmp_path / "ledger.db", clock=clock))
    gate = gate_for(ledger, UnpostedJournal(journal_path), clock)
    ledger.down = True
    await run_call(gate, "r1")  # served; its charge could not be posted
    assert [c.hold_id for c in gate.unposted.owed("acme")] == ["r1"]
    with pytest.raises(LedgerUnavailable):
        await run_call(gate, "r2")  # still down: nothing is admitted over an unposted charge
    clock.advance(5)  # the hold lapses meanwhile

    # A restart: a new Gate reads the journal; the ledger is back.
    ledger.down = False
    restarted = gate_for(ledger, UnpostedJournal(journal_path), clock)
    assert [c.hold_id for c in restarted.unposted.owed()] == ["r1"]
    await run_call(restarted, "r3")
    balance = (await ledger.balances(tenant_id="acme", keys=["run:run"]))["run:run"]
    # r1 (posted late, from the journal) and r3: the run's spend, never spent twice.
    assert balance.committed_nanos == 2 * (1_000 * 150 + 1_000 * 600)
    assert not restarted.unposted
    assert journal_path.read_bytes() == b""
    await ledger.close()


async def test_a_release_the_ledger_failed_to_take_is_owed_and_never_charged_after_a_crash(
    tmp_path: Path, clock: ManualClock
) -> None:
    """A call that failed upstream settles while another process holds the SQLite file
    locked: its release is journaled like a charge. A crash then leaves its admission note in
    the ledger, but the restart knows the call was receipted: it releases the hold instead of
    charging the reservation, and writes no second receipt."""
    db = tmp_path / "ledger.db"

    def gate_over(ledger: SqliteLedger, sink: MemoryReceiptSink) -> Gate:
        return Gate(
            policy_provider=InMemoryPolicyProvider(
                {"acme": {"budgets": {"per_run_usd": "1"}, "reservation_ttl_s": 1}}
            ),
            ledger=ledger,
            pricing=default_pricing_table(),
            signer=HmacSha256Signer(key_id="k1", secret=b"s" * 32),
            sink=sink,
            clock=clock,
            journal=UnpostedJournal(tmp_path / "unposted.jsonl"),
            admissions=LedgerAdmissions(ledger, owner="trail"),
        )

    first_sink = MemoryReceiptSink()
    first = gate_over(SqliteLedger(db, clock=clock, busy_timeout_ms=50), first_sink)
    permit = await first.admit(
        tenant_id="acme",
        request_id="r1",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1_000,
        max_output_tokens=1_000,
    )
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    failed = await first.settle(permit, status="upstream_error", error="upstream 500")
    locker.execute("COMMIT")
    assert "ledger_unsettled" in (failed.error or "")
    assert failed.actual_usd == "0"
    assert first.unposted.owed() == [UnpostedCharge("acme", "r1", 0, None, release=True)]
    assert len(await first.admissions.unsettled()) == 1  # the note is still in the ledger

    # The process dies here; a restart over the same files.
    second_sink = MemoryReceiptSink()
    ledger = SqliteLedger(db, clock=clock)
    second = gate_over(ledger, second_sink)
    assert await recover_admissions(second) == 0
    assert await post_all_owed(second) == 0
    statement = await ledger.statement(tenant_id="acme")
    assert statement.balances == {"run:r1": Balance(0, 0)}  # released, not charged
    assert statement.holds == ()
    assert await second.admissions.unsettled() == []
    assert second_sink.receipts == []
    await ledger.close()

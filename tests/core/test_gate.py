from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aegis.core import (
    BudgetExceeded,
    DuplicateRequest,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    InvalidRequest,
    Ledger,
    LedgerUnavailable,
    ManualClock,
    MemoryReceiptSink,
    PolicyDenied,
    Receipt,
    UnknownModelDenied,
    Usage,
    default_pricing_table,
)

MINI = default_pricing_table().price("gpt-4o-mini")  # 150 / 75 / 600 nano-USD per token


def make_gate(ledger: Ledger, clock: ManualClock, **policy: Any) -> tuple[Gate, MemoryReceiptSink]:
    sink = MemoryReceiptSink()
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": policy}),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k1", secret=b"s" * 32),
        sink=sink,
        clock=clock,
    )
    return gate, sink


def usd(nanos: int) -> str:
    from aegis.core import format_usd

    return format_usd(nanos)


async def call(
    gate: Gate,
    request_id: str,
    *,
    inp: int = 100,
    out: int = 100,
    used: Usage | None = None,
    run_id: str | None = None,
) -> Receipt:
    async with gate.call(
        tenant_id="acme",
        request_id=request_id,
        run_id=run_id,
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=inp,
        max_output_tokens=out,
    ) as governed:
        if used is not None:
            governed.record(used)
    assert governed.receipt is not None
    return governed.receipt


async def test_a_call_is_reserved_settled_and_receipted(ledger: Ledger, clock: ManualClock) -> None:
    gate, sink = make_gate(ledger, clock, budgets={"per_window": {"window": "day", "limit_usd": 1}})
    receipt = await call(
        gate,
        "r1",
        used=Usage(input_tokens=80, cached_input_tokens=40, output_tokens=30, reasoning_tokens=10),
    )
    assert receipt.status == "ok"
    assert receipt.decision.allowed
    assert receipt.reserved_usd == usd(100 * 150 + 100 * 600)
    assert receipt.actual_usd == usd(40 * 150 + 40 * 75 + 30 * 600)
    assert receipt.usage_source == "reported"
    assert receipt.signature is not None
    assert receipt.seq == 0
    assert sink.receipts == [receipt]
    balance = (await ledger.balances(tenant_id="acme", keys=["day:2026-11-26"]))["day:2026-11-26"]
    assert (balance.committed_nanos, balance.pending_nanos) == (40 * 150 + 40 * 75 + 30 * 600, 0)


async def test_per_run_budget_spans_the_run(ledger: Ledger, clock: ManualClock) -> None:
    # Worst case of one call is 75,000 nano-USD; the run may spend 0.0001 USD = 100,000.
    gate, sink = make_gate(ledger, clock, budgets={"per_run_usd": "0.0001"})
    await call(gate, "r1", run_id="run-1", used=Usage(input_tokens=100, output_tokens=40))
    with pytest.raises(BudgetExceeded) as info:
        await call(gate, "r2", run_id="run-1")
    assert info.value.budget == "per_run"
    assert info.value.available_nanos == 100_000 - (100 * 150 + 40 * 600)
    await call(gate, "r3", run_id="run-2")  # another run has its own budget
    # A request without a run is its own run.
    await call(gate, "r4")
    await call(gate, "r5")
    assert [r.decision.allowed for r in sink.receipts] == [True, False, True, True, True]
    assert sink.receipts[1].decision.budget == "per_run"
    assert sink.receipts[1].status == "denied"


@pytest.mark.parametrize(
    ("window", "start", "reset"),
    [
        (
            "minute",
            datetime(2026, 11, 26, 12, 0, 59, 500_000, tzinfo=UTC),
            datetime(2026, 11, 26, 12, 1, tzinfo=UTC),
        ),
        (
            "hour",
            datetime(2026, 11, 26, 12, 59, 59, tzinfo=UTC),
            datetime(2026, 11, 26, 13, 0, tzinfo=UTC),
        ),
        (
            "day",
            datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 11, 27, 0, 0, tzinfo=UTC),
        ),
        (
            "month",
            datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
        ),
        ("month", datetime(2028, 2, 29, 23, 0, tzinfo=UTC), datetime(2028, 3, 1, 0, 0, tzinfo=UTC)),
    ],
)
async def test_windows_reset_on_the_utc_calendar(
    ledger: Ledger, window: str, start: datetime, reset: datetime
) -> None:
    clock = ManualClock(start)
    gate, _ = make_gate(
        ledger, clock, budgets={"per_window": [{"window": window, "limit_usd": "0.0001"}]}
    )
    await call(gate, "r1", used=Usage(input_tokens=100, output_tokens=100))  # 75,000 nano
    with pytest.raises(BudgetExceeded) as info:
        await call(gate, "r2")
    assert info.value.budget == window
    assert info.value.resets_at == reset
    clock.set(reset)  # the very first instant of the next window
    await call(gate, "r3")


async def test_every_window_is_checked_at_once(ledger: Ledger, clock: ManualClock) -> None:
    gate, _ = make_gate(
        ledger,
        clock,
        budgets={
            "per_window": [
                {"window": "minute", "limit_usd": "1"},
                {"window": "day", "limit_usd": "0.0001"},
                {"window": "month", "limit_usd": "1"},
            ]
        },
    )
    await call(gate, "r1")
    with pytest.raises(BudgetExceeded) as info:
        await call(gate, "r2")
    assert info.value.budget == "day"
    keys = ["minute:2026-11-26T12:00", "day:2026-11-26", "month:2026-11"]
    balances = await ledger.balances(tenant_id="acme", keys=keys)
    assert [b.committed_nanos for b in balances.values()] == [75_000] * 3
    assert [b.pending_nanos for b in balances.values()] == [0] * 3


async def test_an_error_releases_the_reservation(ledger: Ledger, clock: ManualClock) -> None:
    gate, sink = make_gate(ledger, clock, budgets={"per_run_usd": "0.0001"})
    with pytest.raises(ConnectionError):
        async with gate.call(
            tenant_id="acme",
            request_id="r1",
            run_id="run",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100,
            max_output_tokens=100,
        ):
            raise ConnectionError("upstream went away")
    assert sink.receipts[-1].status == "upstream_error"
    assert sink.receipts[-1].actual_usd == "0"
    balance = (await ledger.balances(tenant_id="acme", keys=["run:run"]))["run:run"]
    assert (balance.committed_nanos, balance.pending_nanos) == (0, 0)


async def test_cancellation_releases_or_bills_what_was_used(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, sink = make_gate(ledger, clock, budgets={"per_run_usd": "1"})
    started = asyncio.Event()

    async def worker(request_id: str, partial: Usage | None) -> None:
        async with gate.call(
            tenant_id="acme",
            request_id=request_id,
            run_id=request_id,
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100,
            max_output_tokens=100,
        ) as governed:
            if partial is not None:
                governed.record(partial, source="counted")
            started.set()
            await asyncio.sleep(3600)

    for request_id, partial in (("c1", None), ("c2", Usage(input_tokens=100, output_tokens=7))):
        started.clear()
        task = asyncio.create_task(worker(request_id, partial))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    first, second = sink.receipts
    assert (first.status, first.actual_usd, first.usage_source) == ("cancelled", "0", "none")
    assert (second.status, second.usage_source) == ("cancelled", "counted")
    assert second.actual_usd == usd(100 * 150 + 7 * 600)
    balances = await ledger.balances(tenant_id="acme", keys=["run:c1", "run:c2"])
    assert balances["run:c1"].spent_nanos == 0
    assert balances["run:c2"].committed_nanos == 100 * 150 + 7 * 600
    assert balances["run:c2"].pending_nanos == 0


async def test_unknown_usage_charges_the_whole_reservation(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, _ = make_gate(ledger, clock)
    receipt = await call(gate, "r1")
    assert receipt.usage_source == "reservation"
    assert receipt.actual_usd == receipt.reserved_usd == usd(75_000)


async def test_the_same_request_id_is_never_charged_twice(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, sink = make_gate(ledger, clock, budgets={"per_run_usd": "1"})
    await call(gate, "r1", run_id="run", used=Usage(input_tokens=10, output_tokens=10))
    with pytest.raises(DuplicateRequest):
        await call(gate, "r1", run_id="run", used=Usage(input_tokens=10, output_tokens=10))
    balance = (await ledger.balances(tenant_id="acme", keys=["run:run"]))["run:run"]
    assert balance.committed_nanos == 10 * 150 + 10 * 600
    assert sink.receipts[-1].decision.reason == "duplicate_request"


async def test_a_dead_holder_s_reservation_expires(ledger: Ledger, clock: ManualClock) -> None:
    gate, _ = make_gate(
        ledger,
        clock,
        reservation_ttl_s=60,
        budgets={"per_window": {"window": "day", "limit_usd": "0.0001"}},
    )
    await gate.admit(
        tenant_id="acme",
        request_id="dies",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=100,
        max_output_tokens=100,
    )
    with pytest.raises(BudgetExceeded):
        await call(gate, "r2")
    clock.advance(60)
    await call(gate, "r3")


async def test_policy_denials_are_receipted(ledger: Ledger, clock: ManualClock) -> None:
    gate, sink = make_gate(
        ledger, clock, model={"allow_models": ["gpt-4o*"]}, capabilities=["llm:invoke"]
    )
    with pytest.raises(PolicyDenied) as info:
        await gate.admit(
            tenant_id="acme", request_id="a", provider="openai", model="o3", input_tokens=1
        )
    assert info.value.reason == "model_not_allowed"
    with pytest.raises(PolicyDenied) as info:
        await gate.admit(
            tenant_id="acme",
            request_id="b",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1,
            capability="llm:stream",
        )
    assert info.value.reason == "capability_not_allowed"
    with pytest.raises(PolicyDenied) as info:
        await gate.admit(
            tenant_id="mallory",
            request_id="c",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1,
        )
    assert info.value.reason == "unknown_tenant"
    assert [r.decision.reason for r in sink.receipts] == [
        "model_not_allowed",
        "capability_not_allowed",
        "unknown_tenant",
    ]
    assert all(r.status == "denied" and r.actual_usd == "0" for r in sink.receipts)


async def test_a_model_without_a_price_is_denied(ledger: Ledger, clock: ManualClock) -> None:
    gate, sink = make_gate(ledger, clock)
    with pytest.raises(UnknownModelDenied):
        await gate.admit(
            tenant_id="acme",
            request_id="a",
            provider="openai",
            model="gpt-17-ultra",
            input_tokens=1,
        )
    assert sink.receipts[-1].decision.reason == "unknown_model"


async def test_no_max_tokens_reserves_the_model_maximum(ledger: Ledger, clock: ManualClock) -> None:
    gate, _ = make_gate(ledger, clock)
    permit = await gate.admit(
        tenant_id="acme", request_id="a", provider="openai", model="gpt-4o-mini", input_tokens=10
    )
    assert permit.max_output_tokens == MINI.max_output_tokens == 16_384
    assert permit.reserved_nanos == 10 * 150 + 16_384 * 600


async def test_clamping_lowers_max_tokens_to_what_the_budget_allows(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, _ = make_gate(
        ledger,
        clock,
        clamp_max_tokens=True,
        budgets={"per_window": {"window": "day", "limit_usd": "0.00003"}},
    )
    permit = await gate.admit(
        tenant_id="acme",
        request_id="a",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=100,
        max_output_tokens=1000,
    )
    assert permit.clamped
    assert permit.max_output_tokens == (30_000 - 100 * 150) // 600 == 25
    assert permit.reserved_nanos == 100 * 150 + 25 * 600 == 30_000
    await gate.settle(permit, usage=Usage(input_tokens=100, output_tokens=25))
    # Nothing left: below min_output_tokens the call is denied, not clamped to nothing.
    with pytest.raises(BudgetExceeded):
        await gate.admit(
            tenant_id="acme",
            request_id="b",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100,
            max_output_tokens=1000,
        )


class BrokenLedger:
    async def reserve(self, **_: object) -> None:
        raise OSError("disk on fire")


async def test_a_broken_ledger_fails_closed(clock: ManualClock) -> None:
    gate, sink = make_gate(BrokenLedger(), clock)  # type: ignore[arg-type]
    with pytest.raises(LedgerUnavailable):
        await call(gate, "r1")
    assert sink.receipts[-1].decision.reason == "ledger_unavailable"


async def test_receipts_chain_and_resume_after_restart(ledger: Ledger, clock: ManualClock) -> None:
    gate, sink = make_gate(ledger, clock)
    await call(gate, "r1")
    await call(gate, "r2")
    first, second = sink.receipts
    assert second.prev_hash == first.chain_hash()
    restarted = Gate(
        policy_provider=gate.policy_provider,
        ledger=ledger,
        pricing=gate.pricing,
        signer=HmacSha256Signer(key_id="k1", secret=b"s" * 32),
        sink=sink,
        clock=clock,
    )
    await call(restarted, "r3")
    third = sink.receipts[-1]
    assert (third.chain_id, third.seq, third.prev_hash) == (first.chain_id, 2, second.chain_hash())


@pytest.mark.parametrize(
    ("model", "inp", "out", "param"),
    [
        ("gpt-4o-mini", -1, 10, "input_tokens"),
        ("gpt-4o-mini", 10, -1, "max_output_tokens"),
        ("gpt-4o-mini", 10, 2**41, "max_output_tokens"),
        # Within the token range, but $66M of worst case cannot be held exactly by every ledger.
        ("o1", 10, 2**40, "max_output_tokens"),
    ],
)
async def test_absurd_token_counts_are_refused_not_reserved(
    ledger: Ledger, clock: ManualClock, model: str, inp: int, out: int, param: str
) -> None:
    gate, sink = make_gate(ledger, clock, budgets={"per_run_usd": "1"})
    with pytest.raises(InvalidRequest) as info:
        await gate.admit(
            tenant_id="acme",
            request_id="a",
            run_id="r",
            provider="openai",
            model=model,
            input_tokens=inp,
            max_output_tokens=out,
        )
    assert info.value.param == param
    assert sink.receipts[-1].decision.reason == "invalid_request"
    balance = (await ledger.balances(tenant_id="acme", keys=["run:r"]))["run:r"]
    assert balance.spent_nanos == 0


class LedgerDownAtSettle:
    """A ledger that reserves, then goes away before the call is settled."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner

    async def reserve(self, **kwargs: Any) -> Any:
        return await self.inner.reserve(**kwargs)

    async def commit(self, **_: Any) -> Any:
        raise LedgerUnavailable("connection refused")

    async def release(self, **_: Any) -> Any:
        raise LedgerUnavailable("connection refused")


async def test_a_ledger_lost_after_the_call_still_leaves_the_receipt(clock: ManualClock) -> None:
    from aegis.core import MemoryLedger

    gate, sink = make_gate(LedgerDownAtSettle(MemoryLedger(clock=clock)), clock)  # type: ignore[arg-type]
    receipt = await call(gate, "r1", used=Usage(input_tokens=10, output_tokens=10))
    assert receipt.status == "ok"
    assert receipt.actual_usd == usd(10 * 150 + 10 * 600)  # what the call cost, for reconciling
    assert receipt.error == "ledger_unsettled: LedgerUnavailable"
    assert sink.receipts == [receipt]


async def test_a_failed_trail_refuses_calls_then_recovers_and_records_what_it_lost(
    tmp_path: Path, clock: ManualClock
) -> None:
    from aegis.core import (
        FileReceiptSink,
        Keyring,
        MemoryLedger,
        ReceiptSinkUnavailable,
        verify_trail,
    )

    ledger = MemoryLedger(clock=clock)
    sink = FileReceiptSink(tmp_path / "trail")
    signer = HmacSha256Signer(key_id="k1", secret=b"s" * 32)
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": {"budgets": {"per_run_usd": "1"}}}),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=signer,
        sink=sink,
        clock=clock,
    )
    await call(gate, "r1", run_id="run", used=Usage(input_tokens=1, output_tokens=1))
    # The trail's file goes bad under the writer (a disk that failed, a volume unmounted).
    os.close(sink._writer._backend._fd)  # type: ignore[attr-defined]
    with pytest.raises(ReceiptSinkUnavailable):
        await call(gate, "r2", run_id="run")  # its receipt cannot be written
    sink._writer.retry_after_s = 0.0
    with pytest.raises(ReceiptSinkUnavailable):
        await gate.admit(
            tenant_id="acme",
            request_id="r3",
            run_id="run",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1,
            max_output_tokens=1,
        )
    balance = (await ledger.balances(tenant_id="acme", keys=["run:run"]))["run:run"]
    assert balance.pending_nanos == 0  # r3 was refused before any reservation

    for _ in range(200):  # the writer reopens the trail on its own thread
        try:
            sink.check()
            break
        except ReceiptSinkUnavailable:
            await asyncio.sleep(0.01)
    receipt = await call(gate, "r4", run_id="run", used=Usage(input_tokens=1, output_tokens=1))
    await sink.close()

    report = verify_trail([tmp_path / "trail"], Keyring([signer]))
    assert report.is_intact, report.problems
    lines = [
        ln
        for p in sorted((tmp_path / "trail").glob("*.jsonl"))
        for ln in p.read_text().splitlines()
        if ln.startswith('{"')
    ]
    recovered = [ln for ln in lines if "trail:recovered" in ln]
    assert len(recovered) == 1
    assert "1 receipt(s) sealed as seq 1-1 were never written" in recovered[0]
    assert receipt.seq == 2

"""Rate limits in the Gate: reserved with the budgets, exact under concurrency, freed on exit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aegis.core import (
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    Ledger,
    ManualClock,
    MemoryReceiptSink,
    Permit,
    RateLimited,
    Usage,
    default_pricing_table,
)


def make_gate(
    ledger: Ledger, clock: ManualClock, *limits: dict[str, Any]
) -> tuple[Gate, MemoryReceiptSink]:
    sink = MemoryReceiptSink()
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"acme": {"limits": list(limits)}}),
        ledger=ledger,
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k1", secret=b"s" * 32),
        sink=sink,
        clock=clock,
    )
    return gate, sink


async def admit(gate: Gate, request_id: str, model: str = "gpt-4o-mini", out: int = 50) -> Permit:
    return await gate.admit(
        tenant_id="acme",
        request_id=request_id,
        provider="openai",
        model=model,
        input_tokens=100,
        max_output_tokens=out,
    )


async def test_rpm_admits_exactly_the_limit_under_concurrency(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, sink = make_gate(ledger, clock, {"rpm": 4})
    results = await asyncio.gather(
        *(admit(gate, f"r{i}") for i in range(10)), return_exceptions=True
    )
    permits = [r for r in results if isinstance(r, Permit)]
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert (len(permits), len(limited)) == (4, 6)
    assert {e.limit for e in limited} == {"rpm"}
    assert {e.retry_after_s for e in limited} == {60}  # the clock sits at a minute's start
    denied = [r for r in sink.receipts if not r.decision.allowed]
    assert {(r.decision.reason, r.decision.budget) for r in denied} == {("rate_limited", "rpm")}
    # Settling frees no request: the minute is spent; the next minute admits again.
    for permit in permits:
        await gate.settle(permit, usage=Usage(input_tokens=10, output_tokens=5))
    with pytest.raises(RateLimited):
        await admit(gate, "again")
    clock.advance(60)
    await admit(gate, "next-minute")


async def test_tpm_reserves_the_upper_bound_and_keeps_the_real_count(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, _ = make_gate(ledger, clock, {"tpm": 400})
    first = await admit(gate, "r1", out=100)  # reserves 100 + 100 tokens
    assert [(s.kind, s.limit, s.remaining) for s in first.rate_limits] == [("tokens", 400, 200)]
    second = await admit(gate, "r2", out=100)
    assert second.rate_limits[0].remaining == 0
    with pytest.raises(RateLimited) as full:
        await admit(gate, "r3", out=50)
    assert (full.value.limit, full.value.available) == ("tpm", 0)
    # The first call used 50 of its 200 tokens: 150 come back, enough for 100 + 50.
    await gate.settle(first, usage=Usage(input_tokens=30, output_tokens=20))
    third = await admit(gate, "r3", out=50)
    assert third.rate_limits[0].remaining == 0


async def test_a_limit_counts_only_the_models_it_names(ledger: Ledger, clock: ManualClock) -> None:
    gate, _ = make_gate(ledger, clock, {"model": "gpt-4o*", "rpm": 1})
    await admit(gate, "a", model="gpt-4o-mini")
    with pytest.raises(RateLimited) as limited:
        await admit(gate, "b", model="gpt-4o")
    assert limited.value.limit == "rpm:gpt-4o*"
    await admit(gate, "c", model="gpt-4.1-mini")


async def test_in_flight_slots_come_back_on_errors_and_cancellations(
    ledger: Ledger, clock: ManualClock
) -> None:
    gate, _ = make_gate(ledger, clock, {"max_in_flight": 1})
    entered = asyncio.Event()

    async def governed(request_id: str) -> None:
        async with gate.call(
            tenant_id="acme",
            request_id=request_id,
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=10,
            max_output_tokens=10,
        ):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(governed("held"))
    await entered.wait()
    with pytest.raises(RateLimited) as busy:
        await admit(gate, "second")
    assert busy.value.limit == "max_in_flight"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    permit = await admit(gate, "after-cancel")
    await gate.settle(permit, status="upstream_error", error="boom")
    permit = await admit(gate, "after-error")
    await gate.settle(permit, usage=Usage(input_tokens=10, output_tokens=1))
    await admit(gate, "after-success")

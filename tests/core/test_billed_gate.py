"""The Gate reserves under the request's billing terms, refuses retired models, bounds unseen
input by the policy, and receipts what its reservation was computed from."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest

from aegis.core import (
    BillingTerms,
    BudgetExceeded,
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    ManualClock,
    MemoryLedger,
    MemoryReceiptSink,
    ModelRetiredDenied,
    Usage,
    default_pricing_table,
    parse_usd,
)

D = Decimal
M = D(1_000_000)


def nanos(usd: Decimal) -> int:
    return int((usd * 10**9).to_integral_value(rounding=ROUND_CEILING))


def make_gate(clock: ManualClock, policy: dict[str, object] | None = None) -> Gate:
    sink = MemoryReceiptSink()
    return Gate(
        policy_provider=InMemoryPolicyProvider({"acme": policy or {}}),
        ledger=MemoryLedger(clock=clock),
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k", secret=b"s" * 32),
        sink=sink,
        clock=clock,
    )


def receipts(gate: Gate) -> MemoryReceiptSink:
    sink = gate.trail.sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink


async def test_a_priority_request_reserves_and_charges_at_the_priority_price(
    clock: ManualClock,
) -> None:
    gate = make_gate(clock)
    permit = await gate.admit(
        tenant_id="acme",
        request_id="p-1",
        provider="openai",
        model="gpt-5",
        input_tokens=1_000,
        max_output_tokens=2_000,
        terms=BillingTerms(service_tier="priority"),
    )
    # gpt-5 priority: $2.50 input, $20 output
    assert permit.reserved_nanos == nanos((D(1_000) * D("2.50") + D(2_000) * D("20")) / M)
    receipt = await gate.settle(
        permit, usage=Usage(input_tokens=900, output_tokens=1_500, service_tier="priority")
    )
    assert parse_usd(receipt.actual_usd) == nanos((D(900) * D("2.50") + D(1_500) * D("20")) / M)
    assert receipt.usage is not None
    assert receipt.usage.service_tier == "priority"


async def test_a_search_tool_reserves_its_per_call_fee(clock: ManualClock) -> None:
    gate = make_gate(clock)
    permit = await gate.admit(
        tenant_id="acme",
        request_id="s-1",
        provider="openai",
        model="o3",
        input_tokens=1_000,
        max_output_tokens=1_000,
        terms=BillingTerms(tool_calls=(("web_search", 3),)),
    )
    fees = D(3) * D("10") / 1_000
    assert permit.reserved_nanos == nanos((D(1_000) * D(2) + D(1_000) * D(8)) / M + fees)


async def test_a_retired_model_is_refused_naming_its_successor(clock: ManualClock) -> None:
    gate = make_gate(clock)
    with pytest.raises(ModelRetiredDenied) as info:
        await gate.admit(
            tenant_id="acme",
            request_id="r-1",
            provider="gemini",
            model="gemini-2.0-flash-001",
            input_tokens=10,
            max_output_tokens=10,
        )
    assert info.value.successor == "gemini-2.5-flash"
    assert "gemini-2.5-flash" in info.value.message
    [receipt] = receipts(gate).receipts
    assert receipt.decision.reason == "model_retired"


async def test_unseen_input_is_bounded_by_the_policy_and_an_overrun_is_flagged(
    clock: ManualClock,
) -> None:
    policy = {
        "budgets": {"per_window": {"window": "day", "limit_usd": 1}},
        "model": {"unseen_input_tokens": 50_000},
    }
    gate = make_gate(clock, policy)
    # gpt-4.1 with previous_response_id: a whole 1M window would be $2 and never fit $1.
    permit = await gate.admit(
        tenant_id="acme",
        request_id="u-1",
        provider="openai",
        model="gpt-4.1",
        input_tokens=2_000,
        max_output_tokens=1_000,
        input_is_bounded=False,
    )
    assert permit.input_tokens == 52_000
    assert permit.unseen_input_tokens == 50_000
    receipt = await gate.settle(permit, usage=Usage(input_tokens=60_000, output_tokens=10))
    assert receipt.bound is not None
    assert receipt.bound.exceeded
    assert receipt.bound.unseen_input_tokens == 50_000
    # Charged in full, never clipped.
    assert parse_usd(receipt.actual_usd) == nanos((D(60_000) * D(2) + D(10) * D(8)) / M)


async def test_without_a_policy_bound_unseen_input_takes_the_input_limit(
    clock: ManualClock,
) -> None:
    gate = make_gate(clock, {"budgets": {"per_window": {"window": "day", "limit_usd": 1}}})
    with pytest.raises(BudgetExceeded):
        await gate.admit(
            tenant_id="acme",
            request_id="u-2",
            provider="openai",
            model="gpt-4.1",
            input_tokens=2_000,
            max_output_tokens=1_000,
            input_is_bounded=False,
        )


async def test_gpt_5_unseen_input_stops_at_its_272k_input_limit(clock: ManualClock) -> None:
    gate = make_gate(clock)
    permit = await gate.admit(
        tenant_id="acme",
        request_id="g-1",
        provider="openai",
        model="gpt-5",
        input_tokens=1_000,
        max_output_tokens=1_000,
        input_is_bounded=False,
    )
    assert permit.input_tokens == 272_000


async def test_a_reservation_charged_receipt_carries_its_bound(clock: ManualClock) -> None:
    gate = make_gate(clock)
    async with gate.call(
        tenant_id="acme",
        request_id="b-1",
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1_234,
        max_output_tokens=567,
        terms=BillingTerms(service_tier="flex"),
    ):
        pass  # usage never known: the reservation is charged
    [receipt] = receipts(gate).receipts
    assert receipt.usage_source == "reservation"
    assert receipt.bound is not None
    assert (receipt.bound.input_tokens, receipt.bound.output_tokens) == (1_234, 567)
    assert receipt.bound.terms.service_tier == "flex"
    price = gate.pricing.price("gpt-4o-mini")
    repriced = price.worst_case_nanos(1_234, 567, receipt.bound.terms)
    assert parse_usd(receipt.actual_usd) == repriced
    # The first receipt under the table carries it.
    assert receipt.record == gate.pricing.to_dict()


async def test_more_tool_calls_than_reserved_are_charged_and_flagged(clock: ManualClock) -> None:
    gate = make_gate(clock)
    permit = await gate.admit(
        tenant_id="acme",
        request_id="t-1",
        provider="gemini",
        model="gemini-3.5-flash",
        input_tokens=100,
        max_output_tokens=100,
        terms=BillingTerms(tool_calls=(("grounding", 1), ("web_search", 2))),
    )
    usage = Usage(input_tokens=50, output_tokens=10, tool_calls=(("web_search", 5),))
    receipt = await gate.settle(permit, usage=usage)
    assert receipt.bound is not None
    assert receipt.bound.exceeded
    # 3.5 Flash: $1.50 / $9; five queries at $14 per 1k, all charged
    expected = (D(50) * D("1.5") + D(10) * D(9)) / M + D(5) * D(14) / 1_000
    assert parse_usd(receipt.actual_usd) == nanos(expected)

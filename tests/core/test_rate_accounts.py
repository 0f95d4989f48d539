"""Ledger contract: per-account amounts and units (the machinery of rate limits)."""

from __future__ import annotations

import asyncio

import pytest

from aegis.core import (
    Account,
    BudgetExceeded,
    Ledger,
    ManualClock,
    RateLimited,
)


def accounts(now: float, *, rpm: int = 10, tpm: int = 1000, in_flight: int = 5) -> list[Account]:
    return [
        Account("day:x", "day", 1_000_000, True, now + 3600, now + 3600),
        Account("rpm:x", "rpm", rpm, True, now + 30, now + 30, unit="requests", amount=1),
        Account("tpm:x", "tpm", tpm, True, now + 30, now + 30, unit="tokens", amount=100),
        Account("fly:x", "max_in_flight", in_flight, True, now + 900, unit="in_flight", amount=1),
    ]


KEYS = ["day:x", "rpm:x", "tpm:x", "fly:x"]


async def spend(ledger: Ledger) -> dict[str, tuple[int, int]]:
    got = await ledger.balances(tenant_id="acme", keys=KEYS)
    return {k: (b.committed_nanos, b.pending_nanos) for k, b in got.items()}


async def reserve(ledger: Ledger, clock: ManualClock, hold_id: str, **limits: int) -> object:
    return await ledger.reserve(
        tenant_id="acme",
        hold_id=hold_id,
        amount_nanos=500,
        accounts=accounts(clock.time(), **limits),
        ttl_s=60,
    )


async def test_each_account_holds_its_own_amount(ledger: Ledger, clock: ManualClock) -> None:
    first = await reserve(ledger, clock, "r1")
    second = await reserve(ledger, clock, "r2")
    assert getattr(first, "spent", None) in ((0, 0, 0, 0), ())
    assert getattr(second, "spent", None) == (500, 1, 100, 1)
    assert await spend(ledger) == {
        "day:x": (0, 1000),
        "rpm:x": (0, 2),
        "tpm:x": (0, 200),
        "fly:x": (0, 2),
    }


async def test_commit_keeps_requests_reconciles_tokens_frees_the_slot(
    ledger: Ledger, clock: ManualClock
) -> None:
    await reserve(ledger, clock, "r1")
    await ledger.commit(tenant_id="acme", hold_id="r1", amount_nanos=300, tokens=42)
    assert await spend(ledger) == {
        "day:x": (300, 0),
        "rpm:x": (1, 0),
        "tpm:x": (42, 0),
        "fly:x": (0, 0),
    }


async def test_commit_without_a_token_count_keeps_the_tokens_reserved(
    ledger: Ledger, clock: ManualClock
) -> None:
    await reserve(ledger, clock, "r1")
    await ledger.commit(tenant_id="acme", hold_id="r1", amount_nanos=500)
    assert (await spend(ledger))["tpm:x"] == (100, 0)


async def test_release_keeps_only_the_request(ledger: Ledger, clock: ManualClock) -> None:
    await reserve(ledger, clock, "r1")
    await ledger.release(tenant_id="acme", hold_id="r1")
    assert await spend(ledger) == {
        "day:x": (0, 0),
        "rpm:x": (1, 0),
        "tpm:x": (0, 0),
        "fly:x": (0, 0),
    }


async def test_expiry_frees_everything(ledger: Ledger, clock: ManualClock) -> None:
    await reserve(ledger, clock, "r1")
    clock.advance(61)
    got = await ledger.balances(tenant_id="acme", keys=["day:x", "fly:x"])
    assert [(b.committed_nanos, b.pending_nanos) for b in got.values()] == [(0, 0), (0, 0)]


async def test_concurrent_requests_pass_exactly_up_to_the_limit(
    ledger: Ledger, clock: ManualClock
) -> None:
    results = await asyncio.gather(
        *(reserve(ledger, clock, f"r{i}", rpm=3) for i in range(12)), return_exceptions=True
    )
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == 9
    assert len(results) - len(limited) == 3
    assert {e.limit for e in limited} == {"rpm"}
    assert {e.retry_after_s for e in limited} == {30}  # the window ends in 30 s


async def test_tokens_and_slots_limit_too(ledger: Ledger, clock: ManualClock) -> None:
    await reserve(ledger, clock, "r1", tpm=250)
    await reserve(ledger, clock, "r2", tpm=250)
    with pytest.raises(RateLimited) as tokens:
        await reserve(ledger, clock, "r3", tpm=250)
    assert (tokens.value.limit, tokens.value.available, tokens.value.requested) == ("tpm", 50, 100)
    with pytest.raises(RateLimited) as slots:
        await reserve(ledger, clock, "r3", in_flight=2)
    assert (slots.value.limit, slots.value.retry_after_s) == ("max_in_flight", 1)
    await ledger.commit(tenant_id="acme", hold_id="r1", amount_nanos=1, tokens=10)
    await reserve(ledger, clock, "r3", in_flight=2, tpm=250)  # a slot and tokens came back


async def test_a_budget_that_cannot_hold_is_named_before_a_rate_limit(
    ledger: Ledger, clock: ManualClock
) -> None:
    await reserve(ledger, clock, "r1", rpm=1)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(
            tenant_id="acme",
            hold_id="r2",
            amount_nanos=10_000_000,
            accounts=accounts(clock.time(), rpm=1),
            ttl_s=60,
        )

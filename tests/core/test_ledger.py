from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from aegis.core import (
    Account,
    Balance,
    BudgetExceeded,
    DuplicateRequest,
    HoldAlreadyResolved,
    HoldNote,
    HoldNotFound,
    Ledger,
    ManualClock,
    SqliteLedger,
)

DAY = Account(
    key="day:2026-11-26",
    budget="day",
    limit_nanos=1000,
    hard_stop=True,
    expires_at=2e9,
    resets_at=2e9,
)
RUN = Account(key="run:r1", budget="per_run", limit_nanos=600, hard_stop=True, expires_at=2e9)
SOFT = Account(key="month:2026-11", budget="month", limit_nanos=10, hard_stop=False, expires_at=2e9)


async def spent(ledger: Ledger, key: str, tenant: str = "t") -> tuple[int, int]:
    balance = (await ledger.balances(tenant_id=tenant, keys=[key]))[key]
    return balance.committed_nanos, balance.pending_nanos


async def test_reserve_holds_on_every_account(ledger: Ledger) -> None:
    hold = await ledger.reserve(
        tenant_id="t", hold_id="a", amount_nanos=400, accounts=[DAY, RUN], ttl_s=60
    )
    assert hold.amount_nanos == 400
    assert await spent(ledger, DAY.key) == (0, 400)
    assert await spent(ledger, RUN.key) == (0, 400)


async def test_denial_holds_nothing_anywhere_and_names_the_tightest_budget(ledger: Ledger) -> None:
    await ledger.reserve(
        tenant_id="t", hold_id="a", amount_nanos=400, accounts=[DAY, RUN], ttl_s=60
    )
    with pytest.raises(BudgetExceeded) as info:
        await ledger.reserve(
            tenant_id="t", hold_id="b", amount_nanos=300, accounts=[DAY, RUN], ttl_s=60
        )
    assert info.value.budget == "per_run"
    assert info.value.available_nanos == 200
    assert info.value.resets_at is None
    assert await spent(ledger, DAY.key) == (0, 400)  # all or nothing


async def test_a_window_denial_says_when_it_resets(ledger: Ledger) -> None:
    with pytest.raises(BudgetExceeded) as info:
        await ledger.reserve(
            tenant_id="t", hold_id="a", amount_nanos=1001, accounts=[DAY], ttl_s=60
        )
    assert info.value.budget == "day"
    assert info.value.resets_at is not None
    assert info.value.resets_at.timestamp() == 2e9


async def test_exactly_the_limit_fits(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=1000, accounts=[DAY], ttl_s=60)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(tenant_id="t", hold_id="b", amount_nanos=1, accounts=[DAY], ttl_s=60)


async def test_soft_budgets_never_deny(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=50, accounts=[SOFT], ttl_s=60)
    await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=50)
    assert await spent(ledger, SOFT.key) == (50, 0)


async def test_commit_posts_actual_and_frees_the_rest(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=900, accounts=[DAY], ttl_s=60)
    settlement = await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=250)
    assert (settlement.reserved_nanos, settlement.charged_nanos) == (900, 250)
    assert not settlement.late
    assert settlement.overage_nanos == 0
    assert await spent(ledger, DAY.key) == (250, 0)
    await ledger.reserve(tenant_id="t", hold_id="b", amount_nanos=750, accounts=[DAY], ttl_s=60)


async def test_release_frees_everything(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=900, accounts=[DAY], ttl_s=60)
    await ledger.release(tenant_id="t", hold_id="a")
    assert await spent(ledger, DAY.key) == (0, 0)


async def test_a_hold_resolves_once(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)
    await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=5)
    with pytest.raises(HoldAlreadyResolved) as info:
        await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=5)
    assert info.value.state == "committed"
    with pytest.raises(HoldAlreadyResolved):
        await ledger.release(tenant_id="t", hold_id="a")
    with pytest.raises(HoldNotFound):
        await ledger.commit(tenant_id="t", hold_id="nope", amount_nanos=1)
    assert await spent(ledger, DAY.key) == (5, 0)


async def test_request_ids_are_idempotency_keys(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)
    with pytest.raises(DuplicateRequest) as info:
        await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)
    assert info.value.state == "in flight"
    await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=10)
    with pytest.raises(DuplicateRequest) as info:
        await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)
    assert info.value.state == "charged"
    assert await spent(ledger, DAY.key) == (10, 0)
    # The same id in another tenant is another request.
    await ledger.reserve(tenant_id="u", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)


async def test_a_released_request_may_be_retried(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)
    await ledger.release(tenant_id="t", hold_id="a")
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[DAY], ttl_s=60)
    await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=10)
    assert await spent(ledger, DAY.key) == (10, 0)


async def test_holds_expire_after_their_ttl(ledger: Ledger, clock: ManualClock) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=1000, accounts=[DAY], ttl_s=30)
    clock.advance(29.9)
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(tenant_id="t", hold_id="b", amount_nanos=1, accounts=[DAY], ttl_s=30)
    clock.advance(0.1)
    assert await spent(ledger, DAY.key) == (0, 0)
    await ledger.reserve(tenant_id="t", hold_id="b", amount_nanos=1000, accounts=[DAY], ttl_s=30)


async def test_a_late_commit_still_posts_and_says_so(ledger: Ledger, clock: ManualClock) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=100, accounts=[DAY], ttl_s=30)
    clock.advance(31)
    await ledger.balances(tenant_id="t", keys=[DAY.key])  # lets the sweep run first
    settlement = await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=80)
    assert settlement.late
    assert await spent(ledger, DAY.key) == (80, 0)


async def test_releasing_an_expired_hold_is_a_no_op(ledger: Ledger, clock: ManualClock) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=100, accounts=[DAY], ttl_s=30)
    clock.advance(31)
    await ledger.release(tenant_id="t", hold_id="a")
    assert await spent(ledger, DAY.key) == (0, 0)


async def test_renew_keeps_a_long_call_held(ledger: Ledger, clock: ManualClock) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=100, accounts=[DAY], ttl_s=30)
    clock.advance(20)
    await ledger.renew(tenant_id="t", hold_id="a", ttl_s=30)
    clock.advance(20)
    assert await spent(ledger, DAY.key) == (0, 100)
    clock.advance(11)
    assert await spent(ledger, DAY.key) == (0, 0)


async def test_overage_is_posted_not_dropped(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=100, accounts=[DAY], ttl_s=30)
    settlement = await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=130)
    assert settlement.overage_nanos == 30
    assert await spent(ledger, DAY.key) == (130, 0)


async def test_tenants_do_not_share_accounts(ledger: Ledger) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=1000, accounts=[DAY], ttl_s=30)
    await ledger.reserve(tenant_id="u", hold_id="a", amount_nanos=1000, accounts=[DAY], ttl_s=30)
    assert await spent(ledger, DAY.key, "u") == (0, 1000)


async def test_sqlite_ledger_survives_a_restart(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "l.db"
    first = SqliteLedger(path, clock=clock)
    await first.reserve(tenant_id="t", hold_id="a", amount_nanos=300, accounts=[DAY], ttl_s=60)
    await first.commit(tenant_id="t", hold_id="a", amount_nanos=200)
    await first.reserve(tenant_id="t", hold_id="b", amount_nanos=500, accounts=[DAY], ttl_s=60)
    await first.close()
    second = SqliteLedger(path, clock=clock)
    assert await spent(second, DAY.key) == (200, 500)
    with pytest.raises(DuplicateRequest):
        await second.reserve(tenant_id="t", hold_id="a", amount_nanos=1, accounts=[DAY], ttl_s=60)
    clock.advance(61)  # b's holder died with the first process: its hold expires
    assert await spent(second, DAY.key) == (200, 0)
    await second.close()


async def test_a_statement_lists_live_accounts_and_pending_holds(
    ledger: Ledger, clock: ManualClock
) -> None:
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=300, accounts=[DAY], ttl_s=60)
    await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=200)
    await ledger.reserve(
        tenant_id="t", hold_id="b", amount_nanos=100, accounts=[DAY, RUN], ttl_s=90
    )
    await ledger.reserve(tenant_id="t", hold_id="c", amount_nanos=50, accounts=[DAY], ttl_s=30)
    await ledger.reserve(tenant_id="u", hold_id="x", amount_nanos=7, accounts=[DAY], ttl_s=30)
    statement = await ledger.statement(tenant_id="t")
    assert statement.tenant_id == "t"
    assert dict(statement.balances) == {
        DAY.key: Balance(committed_nanos=200, pending_nanos=150),
        RUN.key: Balance(committed_nanos=0, pending_nanos=100),
    }
    now = clock.time()
    assert [(h.hold_id, h.amount_nanos, h.expires_at) for h in statement.holds] == [
        ("c", 50, now + 30),
        ("b", 100, now + 90),
    ]
    clock.advance(30)
    assert [h.hold_id for h in (await ledger.statement(tenant_id="t")).holds] == ["b"]


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_sqlite_notes_live_exactly_as_long_as_their_holds(
    tmp_path: Path, clock: ManualClock, synchronous: Literal["full", "normal"]
) -> None:
    """A note is written with its hold and dropped with its commit or release; one whose
    hold merely expired (its holder died) is still there for the restart to read back."""
    path = tmp_path / "l.db"
    first = SqliteLedger(path, clock=clock, synchronous=synchronous)

    async def noted(hold_id: str, owner: str = "trail-a", amount: int = 100) -> None:
        await first.reserve_noted(
            tenant_id="t",
            hold_id=hold_id,
            amount_nanos=amount,
            accounts=[DAY],
            ttl_s=60,
            note=HoldNote(owner, f"call {hold_id}"),
        )

    for hold_id in ("committed", "released", "expired", "in flight"):
        await noted(hold_id)
    await noted("other's", owner="trail-b")
    with pytest.raises(BudgetExceeded):
        await noted("refused", amount=1000)  # rolled back: neither hold nor note
    await first.commit(tenant_id="t", hold_id="committed", amount_nanos=40)
    await first.release(tenant_id="t", hold_id="released")
    assert sorted(await first.notes(owner="trail-a")) == ["call expired", "call in flight"]
    assert await first.notes(owner="trail-b") == ["call other's"]
    await first.close()

    second = SqliteLedger(path, clock=clock, synchronous=synchronous)  # the restart
    clock.advance(61)  # every hold lapses; the notes of the unresolved ones stay
    assert sorted(await second.notes(owner="trail-a")) == ["call expired", "call in flight"]
    await second.release(tenant_id="t", hold_id="expired")  # a no-op on the hold, not the note
    settlement = await second.commit(tenant_id="t", hold_id="in flight", amount_nanos=100)
    assert settlement.late
    assert await second.notes(owner="trail-a") == []
    assert await second.notes(owner="trail-b") == ["call other's"]
    assert await spent(second, DAY.key) == (140, 0)
    await second.close()

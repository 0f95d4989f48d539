"""The reservation ledger: two-phase holds against every budget a call touches.

A call *reserves* its worst-case cost against each of its budget accounts at once (the run and
each window), all or nothing. It then *commits* the real cost, which releases the rest of the
hold, or *releases* the whole hold. A hold resolves once; one whose holder died expires after
its TTL and stops counting. Spend in an account is committed plus outstanding holds, so with
upper-bound estimates committed spend never passes a hard-stop limit, however many calls race.

Hold ids are the callers' request ids, scoped by tenant, which makes them idempotency keys: a
request id that was charged is never charged again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, Protocol

from aegis.core.errors import BudgetExceeded, RateLimited

__all__ = [
    "Account",
    "AccountUnit",
    "Balance",
    "Hold",
    "HoldNote",
    "HoldState",
    "Ledger",
    "NotingLedger",
    "Settlement",
    "Statement",
    "check_admission",
    "posted_amount",
]

HoldState = Literal["pending", "committed", "released", "expired"]
AccountUnit = Literal["nanos", "requests", "tokens", "in_flight"]
"""What an account counts, and so what a commit posts to it (see :func:`posted_amount`)."""


@dataclass(frozen=True, slots=True)
class Account:
    """One budget a reservation is checked against."""

    key: str
    """Ledger key within the tenant: ``run:<id>``, ``day:2026-11-26``, ``month:2026-11`` ..."""
    budget: str
    """The budget's name in errors and receipts: ``per_run``, ``day`` ..."""
    limit_nanos: int
    """The limit, in the account's ``unit`` (nano-USD for budgets)."""
    hard_stop: bool
    expires_at: float
    """Epoch second after which the account's spend no longer matters (window end)."""
    resets_at: float | None = None
    """When the budget starts afresh (a window's end); ``None`` for budgets that never reset."""
    alert_at: tuple[Decimal, ...] = ()
    """Fractions of ``limit_nanos`` whose crossing fires an alert (ledgers ignore them; the
    Gate checks them after a commit and records each with :meth:`Ledger.mark_alert`)."""
    unit: AccountUnit = "nanos"
    amount: int | None = None
    """What the hold takes from this account; ``None``: the reservation's ``amount_nanos``."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A live reservation."""

    tenant_id: str
    hold_id: str
    amount_nanos: int
    expires_at: float
    spent: tuple[int, ...] = ()
    """Each account's spend (committed + pending) just before this hold, in the order the
    accounts were given (for rate-limit headers); empty when a ledger replays a hold."""


@dataclass(frozen=True, slots=True)
class HoldNote:
    """What a hold is for, in words its owner can read back after a crash."""

    owner: str
    """Who may read the note back (one writer at a time: a receipt trail's slot)."""
    text: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a hold was resolved by a commit."""

    hold_id: str
    reserved_nanos: int
    charged_nanos: int
    late: bool
    """The hold had expired before the commit arrived; the charge was posted anyway."""

    @property
    def overage_nanos(self) -> int:
        """How much the charge exceeded the hold (an estimate that was not an upper bound)."""
        return max(0, self.charged_nanos - self.reserved_nanos)


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's spend: what is committed and what is held."""

    committed_nanos: int = 0
    pending_nanos: int = 0

    @property
    def spent_nanos(self) -> int:
        """Committed plus outstanding reservations: what admission checks against."""
        return self.committed_nanos + self.pending_nanos


@dataclass(frozen=True, slots=True)
class Statement:
    """A tenant's live accounts and pending holds, as an operator reads them."""

    tenant_id: str
    balances: Mapping[str, Balance]
    """Every account the ledger still keeps for the tenant, by key."""
    holds: tuple[Hold, ...]
    """Pending holds, soonest expiry first."""


class Ledger(Protocol):
    """Store of budget accounts and holds; every method is atomic on its own.

    Implementations must raise :class:`~aegis.core.errors.BudgetExceeded` when any hard-stop
    account cannot take the hold (and then hold nothing),
    :class:`~aegis.core.errors.DuplicateRequest` when ``hold_id`` is pending or committed, and
    :class:`~aegis.core.errors.LedgerUnavailable` when the store cannot be reached.
    """

    async def reserve(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        """Hold ``amount_nanos`` on every account, or on none."""
        ...

    async def commit(
        self, *, tenant_id: str, hold_id: str, amount_nanos: int, tokens: int | None = None
    ) -> Settlement:
        """Post the real cost and release the rest; a late commit still posts.

        Accounts in other units post per :func:`posted_amount` (``tokens``: the call's real
        token count, for token accounts).
        """
        ...

    async def release(self, *, tenant_id: str, hold_id: str) -> None:
        """Release the hold (request units stay counted: the request was made); releasing an
        expired hold is a no-op."""
        ...

    async def renew(self, *, tenant_id: str, hold_id: str, ttl_s: float) -> Hold:
        """Push a pending hold's expiry to ``ttl_s`` from now (for long streams)."""
        ...

    async def balances(self, *, tenant_id: str, keys: Sequence[str]) -> dict[str, Balance]:
        """Current spend of the named accounts (missing accounts read as zero)."""
        ...

    async def statement(self, *, tenant_id: str) -> Statement:
        """Every live account of the tenant and its pending holds (for operators)."""
        ...

    async def mark_alert(
        self, *, tenant_id: str, key: str, threshold: str, expires_at: float
    ) -> bool:
        """Record that alert ``threshold`` of account ``key`` fired: ``True`` for the first
        caller only (across every process sharing the store) until ``expires_at`` (the
        window's end), and ``False`` once that has passed (the window is over)."""
        ...

    async def close(self) -> None:
        """Release resources; the ledger is unusable afterwards."""
        ...


class NotingLedger(Ledger, Protocol):
    """A ledger that keeps a note with a hold: written in the reservation's own transaction
    (as durable as the hold, with no write of its own) and dropped in the one that commits
    or releases the hold. What a crash left in flight can then be read back from the ledger.
    """

    async def reserve_noted(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
        note: HoldNote,
    ) -> Hold:
        """:meth:`Ledger.reserve`, keeping ``note`` until the hold is committed or released."""
        ...

    async def notes(self, *, owner: str) -> list[str]:
        """The texts of ``owner``'s notes whose holds were never committed or released."""
        ...


def posted_amount(
    unit: str, reserved: int, amount_nanos: int, tokens: int | None, *, released: bool = False
) -> int:
    """What resolving a hold posts to an account of ``unit`` that held ``reserved``.

    Budgets post the real cost (nothing on release); request units stay counted (the request
    was made); token units post the real token count (the reservation when it is unknown,
    nothing on release); calls in flight post nothing (the slot is free again).
    """
    if unit == "requests":
        return reserved
    if released or unit == "in_flight":
        return 0
    if unit == "tokens":
        return reserved if tokens is None else tokens
    return amount_nanos


def check_admission(
    tenant_id: str,
    amount_nanos: int,
    accounts: Sequence[Account],
    spent: Sequence[int],
    now: float | None = None,
) -> None:
    """Raise :class:`BudgetExceeded` for the tightest hard-stop budget that cannot take
    ``amount_nanos`` on top of ``spent`` (committed + pending, one per account), else
    :class:`RateLimited` for the tightest rate limit that cannot take its amount.

    Shared by every ledger so they agree on the rule and on which budget is named. A budget
    is named first: retrying cannot help a call that no budget can hold.
    """
    worst: tuple[int, Account] | None = None
    limited: tuple[int, Account, int] | None = None
    for account, used in zip(accounts, spent, strict=True):
        want = amount_nanos if account.amount is None else account.amount
        if account.hard_stop and used + want > account.limit_nanos:
            available = max(0, account.limit_nanos - used)
            if account.unit != "nanos":
                if limited is None or available < limited[0]:
                    limited = (available, account, want)
            elif worst is None or available < worst[0]:
                worst = (available, account)
    if worst is None and limited is not None:
        available, account, want = limited
        # Windows free up when they end; a slot in flight, soon (a second is a fair guess).
        wait = 1.0 if account.resets_at is None or now is None else account.resets_at - now
        raise RateLimited(
            tenant_id=tenant_id,
            limit=account.budget,
            requested=want,
            available=available,
            limit_value=account.limit_nanos,
            retry_after_s=max(1, int(-(-wait // 1))),
        )
    if worst is not None:
        available, account = worst
        resets = (
            None if account.resets_at is None else datetime.fromtimestamp(account.resets_at, UTC)
        )
        raise BudgetExceeded(
            tenant_id=tenant_id,
            budget=account.budget,
            requested_nanos=amount_nanos,
            available_nanos=available,
            limit_nanos=account.limit_nanos,
            resets_at=resets,
        )

"""A ledger in process memory: exact, fast, and gone on restart."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from aegis.core.clock import Clock, SystemClock
from aegis.core.errors import DuplicateRequest, HoldAlreadyResolved, HoldNotFound
from aegis.core.ledger import (
    Account,
    Balance,
    Hold,
    HoldState,
    Settlement,
    Statement,
    check_admission,
    posted_amount,
)

__all__ = ["MemoryLedger"]


@dataclass(slots=True)
class _Account:
    committed: int = 0
    pending: int = 0
    expires_at: float = 0.0


@dataclass(slots=True)
class _Hold:
    amount: int
    keys: tuple[str, ...]
    amounts: tuple[int, ...]
    """What the hold takes from each account (its unit's amount)."""
    units: tuple[str, ...]
    expires_at: float
    state: HoldState = "pending"
    charged: int = 0
    resolved_at: float = 0.0


class MemoryLedger:
    """All accounts and holds in dicts; safe for any number of tasks on one event loop.

    Each method runs without awaiting, so it is atomic with respect to other tasks.
    """

    def __init__(self, *, clock: Clock | None = None, retention_s: float = 86_400.0) -> None:
        """``retention_s``: how long a resolved hold is kept to answer duplicate request ids."""
        self._clock = clock or SystemClock()
        self._retention_s = retention_s
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._holds: dict[tuple[str, str], _Hold] = {}
        self._expiry: list[tuple[float, str, str]] = []
        self._alerts: dict[tuple[str, str, str], float] = {}
        self._next_prune = 0.0

    def _sweep(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, tenant_id, hold_id = heapq.heappop(expiry)
            hold = self._holds.get((tenant_id, hold_id))
            # A renewed hold left a stale heap entry behind; only the current expiry counts.
            if hold is None or hold.state != "pending" or hold.expires_at > now:
                continue
            hold.state = "expired"
            hold.resolved_at = now
            for key, amount in zip(hold.keys, hold.amounts, strict=True):
                self._accounts[(tenant_id, key)].pending -= amount
        if now >= self._next_prune:
            self._prune(now)

    def _prune(self, now: float) -> None:
        self._next_prune = now + 60.0
        self._accounts = {
            k: a for k, a in self._accounts.items() if a.pending or a.expires_at > now
        }
        self._alerts = {k: end for k, end in self._alerts.items() if end > now}
        horizon = now - self._retention_s
        self._holds = {
            k: h for k, h in self._holds.items() if h.state == "pending" or h.resolved_at > horizon
        }

    async def reserve(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        now = self._clock.time()
        self._sweep(now)
        previous = self._holds.get((tenant_id, hold_id))
        if previous is not None and previous.state in ("pending", "committed"):
            raise DuplicateRequest(
                hold_id, "in flight" if previous.state == "pending" else "charged"
            )
        rows = []
        for account in accounts:
            row = self._accounts.get((tenant_id, account.key))
            if row is None:
                row = self._accounts[(tenant_id, account.key)] = _Account()
            row.expires_at = max(row.expires_at, account.expires_at)
            rows.append(row)
        spent = tuple(r.committed + r.pending for r in rows)
        check_admission(tenant_id, amount_nanos, accounts, spent, now)
        amounts = tuple(amount_nanos if a.amount is None else a.amount for a in accounts)
        for row, amount in zip(rows, amounts, strict=True):
            row.pending += amount
        expires_at = now + ttl_s
        self._holds[(tenant_id, hold_id)] = _Hold(
            amount=amount_nanos,
            keys=tuple(a.key for a in accounts),
            amounts=amounts,
            units=tuple(a.unit for a in accounts),
            expires_at=expires_at,
        )
        heapq.heappush(self._expiry, (expires_at, tenant_id, hold_id))
        return Hold(tenant_id, hold_id, amount_nanos, expires_at, spent)

    def _get(self, tenant_id: str, hold_id: str) -> _Hold:
        hold = self._holds.get((tenant_id, hold_id))
        if hold is None:
            raise HoldNotFound(f"no reservation {hold_id!r} for tenant {tenant_id!r}")
        return hold

    async def commit(
        self, *, tenant_id: str, hold_id: str, amount_nanos: int, tokens: int | None = None
    ) -> Settlement:
        now = self._clock.time()
        self._sweep(now)
        hold = self._get(tenant_id, hold_id)
        if hold.state in ("committed", "released"):
            raise HoldAlreadyResolved(hold_id, hold.state)
        late = hold.state == "expired"
        for key, held, unit in zip(hold.keys, hold.amounts, hold.units, strict=True):
            row = self._accounts.get((tenant_id, key))
            if row is None:
                row = self._accounts[(tenant_id, key)] = _Account(expires_at=now)
            if not late:
                row.pending -= held
            row.committed += posted_amount(unit, held, amount_nanos, tokens)
        hold.state = "committed"
        hold.charged = amount_nanos
        hold.resolved_at = now
        return Settlement(hold_id, hold.amount, amount_nanos, late)

    async def release(self, *, tenant_id: str, hold_id: str) -> None:
        now = self._clock.time()
        self._sweep(now)
        hold = self._get(tenant_id, hold_id)
        if hold.state == "expired":
            return
        if hold.state != "pending":
            raise HoldAlreadyResolved(hold_id, hold.state)
        for key, held, unit in zip(hold.keys, hold.amounts, hold.units, strict=True):
            row = self._accounts[(tenant_id, key)]
            row.pending -= held
            row.committed += posted_amount(unit, held, 0, None, released=True)
        hold.state = "released"
        hold.resolved_at = now

    async def renew(self, *, tenant_id: str, hold_id: str, ttl_s: float) -> Hold:
        now = self._clock.time()
        self._sweep(now)
        hold = self._get(tenant_id, hold_id)
        if hold.state != "pending":
            raise HoldAlreadyResolved(hold_id, hold.state)
        hold.expires_at = now + ttl_s
        heapq.heappush(self._expiry, (hold.expires_at, tenant_id, hold_id))
        return Hold(tenant_id, hold_id, hold.amount, hold.expires_at)

    async def balances(self, *, tenant_id: str, keys: Sequence[str]) -> dict[str, Balance]:
        self._sweep(self._clock.time())
        result: dict[str, Balance] = {}
        for key in keys:
            row = self._accounts.get((tenant_id, key))
            result[key] = Balance() if row is None else Balance(row.committed, row.pending)
        return result

    async def statement(self, *, tenant_id: str) -> Statement:
        self._sweep(self._clock.time())
        balances = {
            key: Balance(row.committed, row.pending)
            for (tenant, key), row in self._accounts.items()
            if tenant == tenant_id
        }
        holds = sorted(
            (
                Hold(tenant, hold_id, hold.amount, hold.expires_at)
                for (tenant, hold_id), hold in self._holds.items()
                if tenant == tenant_id and hold.state == "pending"
            ),
            key=lambda h: h.expires_at,
        )
        return Statement(tenant_id, balances, tuple(holds))

    async def mark_alert(
        self, *, tenant_id: str, key: str, threshold: str, expires_at: float
    ) -> bool:
        now = self._clock.time()
        mark = (tenant_id, key, threshold)
        if expires_at <= now or self._alerts.get(mark, 0.0) > now:
            return False
        self._alerts[mark] = expires_at
        return True

    async def close(self) -> None:
        return None

"""Rate limits as ledger accounts, reserved in the same atomic step as the budgets.

Each :class:`~aegis.core.policy.RateLimit` matching a call's model becomes up to three accounts
of the call's hold: one request in the current calendar minute (``rpm``, kept when the call
ends), its token upper bound in that minute (``tpm``, reconciled to the real count when the
call is charged), and one slot in flight (``max_in_flight``, freed when the call settles or its
hold expires). The ledger checks them with the budgets, all or nothing, so limits hold exactly
under concurrency and across replicas, like budgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Final, Literal

from aegis.core.ledger import Account
from aegis.core.policy import Policy
from aegis.core.windows import window_span

__all__ = ["RateLimitStatus", "limit_accounts", "limit_statuses"]

IN_FLIGHT_GRACE_S: Final = 60
"""A slot account outlives the longest hold by this much (then it is empty anyway)."""


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """Where a call left one per-minute limit (the ``x-ratelimit-*`` headers)."""

    kind: Literal["requests", "tokens"]
    limit: int
    remaining: int
    """What the limit still allows in this minute, after this call's reservation."""
    resets_at: float
    """Epoch second the minute ends."""


def _name(kind: str, model: str) -> str:
    return kind if model == "*" else f"{kind}:{model}"


def limit_accounts(policy: Policy, model: str, tokens: int, now: float) -> list[Account]:
    """The rate-limit accounts of a call to ``model`` bounded by ``tokens`` (input + output)."""
    accounts: list[Account] = []
    for limit in policy.limits:
        if not fnmatchcase(model, limit.model):
            continue
        minute, end = window_span("minute", now)
        if limit.rpm is not None:
            accounts.append(
                Account(
                    key=f"rpm:{limit.model}:{minute}",
                    budget=_name("rpm", limit.model),
                    limit_nanos=limit.rpm,
                    hard_stop=True,
                    expires_at=end,
                    resets_at=end,
                    unit="requests",
                    amount=1,
                )
            )
        if limit.tpm is not None:
            accounts.append(
                Account(
                    key=f"tpm:{limit.model}:{minute}",
                    budget=_name("tpm", limit.model),
                    limit_nanos=limit.tpm,
                    hard_stop=True,
                    expires_at=end,
                    resets_at=end,
                    unit="tokens",
                    amount=tokens,
                )
            )
        if limit.max_in_flight is not None:
            accounts.append(
                Account(
                    key=f"in_flight:{limit.model}",
                    budget=_name("max_in_flight", limit.model),
                    limit_nanos=limit.max_in_flight,
                    hard_stop=True,
                    expires_at=now + policy.reservation_ttl_s + IN_FLIGHT_GRACE_S,
                    unit="in_flight",
                    amount=1,
                )
            )
    return accounts


def limit_statuses(
    accounts: Sequence[Account], spent: Sequence[int]
) -> tuple[RateLimitStatus, ...]:
    """The tightest requests and tokens limits after a reservation (``spent``: before it)."""
    tightest: dict[str, RateLimitStatus] = {}
    for account, used in zip(accounts, spent, strict=False):
        if account.unit not in ("requests", "tokens") or account.resets_at is None:
            continue
        kind: Literal["requests", "tokens"] = "requests" if account.unit == "requests" else "tokens"
        remaining = max(0, account.limit_nanos - used - (account.amount or 0))
        status = RateLimitStatus(kind, account.limit_nanos, remaining, account.resets_at)
        if kind not in tightest or remaining < tightest[kind].remaining:
            tightest[kind] = status
    return tuple(tightest.values())

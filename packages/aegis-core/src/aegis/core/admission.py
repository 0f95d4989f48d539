"""Admission: what a call must pass before anything is reserved, and what its reservation
spans.

:func:`plan` runs every check that needs no ledger (sizes, capability, model, price, the worst
case) and returns the :class:`Reservation` to place; :func:`refusal` names the receipt reason
of any error a check or the ledger raised. The Gate then has one refusal site.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from aegis.core.control import KeyScope
from aegis.core.errors import (
    AegisError,
    BudgetExceeded,
    Denied,
    DuplicateRequest,
    InvalidRequest,
    LedgerError,
    ModelRetiredDenied,
    PolicyDenied,
    RateLimited,
    UnknownModelDenied,
)
from aegis.core.ledger import Account
from aegis.core.money import format_usd
from aegis.core.policy import Policy
from aegis.core.pricing import STANDARD_TERMS, BillingTerms, ModelPrice, PricingTable
from aegis.core.rate_limits import limit_accounts
from aegis.core.windows import window_span

__all__ = [
    "MAX_RESERVATION_NANOS",
    "MAX_TOKENS",
    "RUN_RETENTION_S",
    "Reservation",
    "budget_accounts",
    "key_accounts",
    "plan",
    "refusal",
    "unknown_tenant",
]

RUN_RETENTION_S: Final = 7 * 86_400
"""A run's spend is remembered this long after its last call."""
MAX_TOKENS: Final = 2**40
"""Token counts above this are not a real call (and would overflow a ledger's integers)."""
MAX_RESERVATION_NANOS: Final = 2**53 - 1
"""Every ledger stores amounts exactly up to here (Redis scripts compute in doubles)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """The hold a call needs: its worst case and every account it is placed on."""

    price: ModelPrice
    input_tokens: int
    output_tokens: int
    estimated_nanos: int
    budgets: tuple[Account, ...]
    limits: tuple[Account, ...]
    """Rate-limit accounts (their units are requests and tokens, not money)."""
    clamped: bool = False
    terms: BillingTerms = STANDARD_TERMS
    """The tier, tool calls and modalities the worst case is priced under."""
    unseen_input_tokens: int = 0
    """The part of ``input_tokens`` allowed for input the request does not show."""

    @property
    def accounts(self) -> list[Account]:
        return [*self.budgets, *self.limits]

    def clamp(
        self, policy: Policy, capability: str, available_nanos: int, now: float
    ) -> Reservation | None:
        """The same call with its output lowered to fit ``available_nanos``, or ``None`` when
        the policy does not clamp or what would be left is below its minimum."""
        affordable = self.price.output_tokens_affordable(
            self.input_tokens, available_nanos, self.terms
        )
        if (
            not policy.clamp_max_tokens
            or capability == "embeddings:create"
            or affordable < policy.min_output_tokens
        ):
            return None
        output = min(self.output_tokens, affordable)
        return replace(
            self,
            output_tokens=output,
            estimated_nanos=self.price.worst_case_nanos(self.input_tokens, output, self.terms),
            limits=tuple(limit_accounts(policy, self.price.model, self.input_tokens + output, now)),
            clamped=True,
        )


def unknown_tenant(tenant_id: str) -> PolicyDenied:
    return PolicyDenied(
        f"unknown tenant {tenant_id!r}", tenant_id=tenant_id, reason="unknown_tenant"
    )


def plan(
    policy: Policy,
    pricing: PricingTable,
    *,
    tenant_id: str,
    run_key: str,
    model: str,
    capability: str,
    input_tokens: int,
    max_output_tokens: int | None,
    now: float,
    key: KeyScope | None = None,
    terms: BillingTerms = STANDARD_TERMS,
    input_is_bounded: bool = True,
) -> Reservation:
    """The reservation a call needs, or the error that refuses it (no ledger involved).

    ``terms`` price the worst case (tier, tool calls, audio); ``input_is_bounded=False`` adds
    the policy's allowance for input the request does not show (at most up to the model's
    input limit). ``key`` narrows the policy for one virtual key: its models must be allowed
    by both, and its window budgets are reserved beside the tenant's (all or nothing, like
    every account)."""
    for name, value in (("input_tokens", input_tokens), ("max_output_tokens", max_output_tokens)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS
        ):
            raise InvalidRequest(f"{name} must be an integer from 0 to {MAX_TOKENS}", param=name)
    if capability not in policy.capabilities:
        raise PolicyDenied(
            f"capability {capability!r} is not allowed for tenant {tenant_id!r}",
            tenant_id=tenant_id,
            reason="capability_not_allowed",
        )
    if not policy.allows_model(model):
        raise PolicyDenied(
            f"model {model!r} is not allowed for tenant {tenant_id!r}",
            tenant_id=tenant_id,
            reason="model_not_allowed",
        )
    if key is not None and not key.allows_model(model):
        raise PolicyDenied(
            f"model {model!r} is not allowed for key {key.key_id!r}",
            tenant_id=tenant_id,
            reason="model_not_allowed",
        )
    price = pricing.get(model)
    if price is None:
        raise UnknownModelDenied(
            f"model {model!r} has no price, so its cost cannot be budgeted",
            tenant_id=tenant_id,
            reason="unknown_model",
        )
    if price.is_retired(datetime.fromtimestamp(now, UTC).date()):
        successor = f"; use {price.successor!r}" if price.successor else ""
        raise ModelRetiredDenied(
            f"model {model!r} was shut down by its provider on {price.retired}{successor}",
            tenant_id=tenant_id,
            reason="model_retired",
            successor=price.successor,
        )
    unseen = 0
    if not input_is_bounded:
        limit = price.input_limit
        allowance = policy.unseen_input_tokens
        unseen = limit if allowance is None else allowance
        if limit > 0:
            # The provider refuses a prompt over its input limit, so the unseen part never
            # needs to reach beyond it.
            unseen = max(0, min(unseen, limit - input_tokens))
        input_tokens += unseen
    output_tokens = price.max_output_tokens if max_output_tokens is None else max_output_tokens
    estimated = price.worst_case_nanos(input_tokens, output_tokens, terms)
    if estimated > MAX_RESERVATION_NANOS:
        raise InvalidRequest(
            f"the call's worst case (${format_usd(estimated)}) is too large to budget",
            param="max_output_tokens",
        )
    return Reservation(
        price=price,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        estimated_nanos=estimated,
        budgets=tuple(budget_accounts(policy, run_key, now) + key_accounts(key, now)),
        limits=tuple(limit_accounts(policy, model, input_tokens + output_tokens, now)),
        terms=terms,
        unseen_input_tokens=unseen,
    )


def budget_accounts(policy: Policy, run_key: str, now: float) -> list[Account]:
    """The money accounts a call of ``run_key`` is charged on: its run, then every window."""
    accounts = []
    if policy.per_run_nanos is not None:
        accounts.append(
            Account(
                key=f"run:{run_key}",
                budget="per_run",
                limit_nanos=policy.per_run_nanos,
                hard_stop=True,
                expires_at=now + RUN_RETENTION_S,
                alert_at=policy.per_run_alert_at,
            )
        )
    for budget in policy.per_window:
        key, end = window_span(budget.window, now)
        accounts.append(
            Account(
                key=key,
                budget=budget.window,
                limit_nanos=budget.limit_nanos,
                hard_stop=budget.hard_stop,
                expires_at=end,
                resets_at=end,
                alert_at=budget.alert_at,
            )
        )
    return accounts


def key_accounts(key: KeyScope | None, now: float) -> list[Account]:
    """The accounts of one key's own window budgets (``key:<id>:day:2026-11-26`` ...), named
    ``key_<window>`` in refusals."""
    accounts: list[Account] = []
    if key is None:
        return accounts
    key_id = key.key_id
    for budget in key.per_window:
        window, end = window_span(budget.window, now)
        accounts.append(
            Account(
                key=f"key:{key_id}:{window}",
                budget=f"key_{budget.window}",
                limit_nanos=budget.limit_nanos,
                hard_stop=True,
                expires_at=end,
                resets_at=end,
            )
        )
    return accounts


def refusal(exc: AegisError) -> tuple[str, str | None]:
    """The receipt's ``decision.reason`` and ``decision.budget`` for a refusal by ``exc``."""
    if isinstance(exc, BudgetExceeded):
        return "budget_exceeded", exc.budget
    if isinstance(exc, RateLimited):
        return "rate_limited", exc.limit
    if isinstance(exc, Denied):
        return exc.reason, None
    if isinstance(exc, InvalidRequest):
        return "invalid_request", None
    if isinstance(exc, DuplicateRequest):
        return "duplicate_request", None
    if isinstance(exc, LedgerError):
        return "ledger_unavailable", None
    return "governance_unavailable", None

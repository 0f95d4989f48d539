"""A tenant's usage as operators and the tenant see it: each window budget's current spend and
reservations (read from the ledger, so they are what admission checks against), and what the
receipts since the process started add up to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aegis.core import Gate, Policy, format_usd, window_span
from aegis.proxy.stats import DecisionKey, ReceiptStats

__all__ = ["BudgetUsage", "budget_usage", "tenant_usage"]


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """One window budget of one tenant, now."""

    tenant_id: str
    budget: str
    """The window (``day``, ``month`` ...), as receipts name the budget."""
    account: str
    """The ledger account of the current window (``day:2026-11-26``)."""
    limit_nanos: int
    committed_nanos: int
    """Charged in this window."""
    pending_nanos: int
    """Reserved by calls in flight and not yet settled."""
    hard_stop: bool
    resets_at: float

    @property
    def remaining_nanos(self) -> int:
        return max(0, self.limit_nanos - self.committed_nanos - self.pending_nanos)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "account": self.account,
            "limit_usd": format_usd(self.limit_nanos),
            "spent_usd": format_usd(self.committed_nanos),
            "reserved_usd": format_usd(self.pending_nanos),
            "remaining_usd": format_usd(self.remaining_nanos),
            "hard_stop": self.hard_stop,
            "resets_at": _iso(self.resets_at),
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def budget_usage(gate: Gate, policy: Policy, now: float) -> list[BudgetUsage]:
    """The tenant's window budgets as the ledger holds them at ``now``."""
    if not policy.per_window:
        return []
    spans = [window_span(b.window, now) for b in policy.per_window]
    balances = await gate.ledger.balances(
        tenant_id=policy.tenant_id, keys=[key for key, _ in spans]
    )
    result = []
    for budget, (key, end) in zip(policy.per_window, spans, strict=True):
        balance = balances.get(key)
        result.append(
            BudgetUsage(
                tenant_id=policy.tenant_id,
                budget=budget.window,
                account=key,
                limit_nanos=budget.limit_nanos,
                committed_nanos=0 if balance is None else balance.committed_nanos,
                pending_nanos=0 if balance is None else balance.pending_nanos,
                hard_stop=budget.hard_stop,
                resets_at=end,
            )
        )
    return result


async def tenant_usage(gate: Gate, stats: ReceiptStats, policy: Policy) -> dict[str, Any]:
    """Everything a usage view shows about one tenant (plain data for JSON)."""
    tenant = policy.tenant_id
    now = gate.clock.time()
    budgets = await budget_usage(gate, policy, now)
    outcomes: dict[str, int] = {}
    denials: dict[str, int] = {}
    requests_by_model: dict[str, int] = {}
    for fields, count in stats.decisions.items():
        key = DecisionKey._make(fields)
        if key.tenant != tenant:
            continue
        outcomes[key.outcome] = outcomes.get(key.outcome, 0) + count
        requests_by_model[key.model] = requests_by_model.get(key.model, 0) + count
        if key.outcome == "denied":
            why = key.budget or key.reason or "denied"
            denials[why] = denials.get(why, 0) + count
    spend_by_model: dict[str, int] = {}
    for (t, _provider, model), nanos in stats.spend_nanos.items():
        if t == tenant:
            spend_by_model[model] = spend_by_model.get(model, 0) + nanos
    tokens: dict[str, int] = {}
    for (t, _provider, _model, kind), count in stats.tokens.items():
        if t == tenant:
            tokens[kind] = tokens.get(kind, 0) + count
    models = sorted(
        set(spend_by_model) | set(requests_by_model),
        key=lambda m: (-spend_by_model.get(m, 0), -requests_by_model.get(m, 0), m),
    )
    timeline = stats.timeline.get(tenant, {})
    return {
        "tenant_id": tenant,
        "as_of": _iso(now),
        "budgets": [b.to_dict() for b in budgets],
        "per_run_limit_usd": None
        if policy.per_run_nanos is None
        else format_usd(policy.per_run_nanos),
        "since_start": {
            "requests": sum(outcomes.values()),
            "outcomes": outcomes,
            "denials": denials,
            "spend_usd": format_usd(sum(spend_by_model.values())),
            "tokens": tokens,
            "models": [
                {
                    "model": m,
                    "requests": requests_by_model.get(m, 0),
                    "spend_usd": format_usd(spend_by_model.get(m, 0)),
                }
                for m in models
            ],
            "timeline": [
                {"minute": _iso(minute), "spend_usd": format_usd(nanos)}
                for minute, nanos in sorted(timeline.items())
            ],
        },
    }

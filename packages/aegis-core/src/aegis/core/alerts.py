"""Budget alerts: a budget's committed spend crossing one of its ``alert_at`` fractions.

After a call's charge is committed, the Gate reads the spend of each of the call's budgets that
carries thresholds and, for every threshold now reached, asks the ledger to mark it
(:meth:`~aegis.core.ledger.Ledger.mark_alert`). Only the first caller in the window wins the
mark, so each threshold fires once per window per tenant however many replicas share the
ledger. A fired alert is written to the receipt trail and handed to the Gate's ``on_alert``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aegis.core.ledger import Account
from aegis.core.money import format_usd

__all__ = ["BudgetAlert", "reached"]


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """One threshold of one budget, reached in one window."""

    tenant_id: str
    budget: str
    """``per_run``, ``minute``, ``hour``, ``day`` or ``month``."""
    account: str
    """The ledger account (``day:2026-11-26``, ``run:<id>`` ...): names the window."""
    threshold: Decimal
    """The fraction of the limit that was reached."""
    limit_nanos: int
    spent_nanos: int
    """Committed spend when the alert fired (at least ``threshold`` times the limit)."""
    hard_stop: bool
    window_ends_at: str | None
    """UTC ISO 8601; ``None`` for a run budget."""
    run_id: str | None
    request_id: str
    """The call whose charge reached the threshold."""
    receipt_id: str
    """The alert's own receipt in the trail."""
    fired_at: str

    @property
    def threshold_text(self) -> str:
        """The threshold as written in policies (``"0.8"``)."""
        return format(self.threshold, "f")

    def describe(self) -> str:
        """One line for people: which budget, how far, how much."""
        percent = format((self.threshold * 100).normalize(), "f")
        return (
            f"{self.budget} budget reached {percent}% of its limit: spent "
            f"${format_usd(self.spent_nanos)} of ${format_usd(self.limit_nanos)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON data (what a webhook receives); amounts as exact USD strings."""
        return {
            "type": "budget.alert",
            "tenant_id": self.tenant_id,
            "budget": self.budget,
            "account": self.account,
            "threshold": self.threshold_text,
            "limit_usd": format_usd(self.limit_nanos),
            "spent_usd": format_usd(self.spent_nanos),
            "hard_stop": self.hard_stop,
            "window_ends_at": self.window_ends_at,
            "run_id": self.run_id,
            "request_id": self.request_id,
            "receipt_id": self.receipt_id,
            "fired_at": self.fired_at,
        }


def reached(account: Account, committed_nanos: int) -> list[Decimal]:
    """The account's thresholds that ``committed_nanos`` has reached (exact arithmetic)."""
    return [t for t in account.alert_at if committed_nanos >= account.limit_nanos * t]

"""Firing budget alerts after a charge: each threshold once per window, across processes.

The ledger's :meth:`~aegis.core.ledger.Ledger.mark_alert` decides which caller fires a
threshold; this module remembers what this process already saw fire, so a busy tenant costs no
ledger call per request until its window ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from aegis.core.admission import budget_accounts
from aegis.core.alerts import BudgetAlert, reached
from aegis.core.ledger import Account, Ledger
from aegis.core.receipt_trail import CallSubject, Outcome, ReceiptTrail, iso_utc
from aegis.core.receipts import Decision, new_receipt_id

if TYPE_CHECKING:
    from aegis.core.permit import Permit

__all__ = ["AlertTracker"]

logger = logging.getLogger(__name__)

_MAX_REMEMBERED = 4096


class AlertTracker:
    """Checks a charged call's budgets against their ``alert_at`` thresholds."""

    def __init__(self, ledger: Ledger, trail: ReceiptTrail) -> None:
        self.ledger = ledger
        self.trail = trail
        self.on_alert: Callable[[BudgetAlert], None] | None = None
        """Called with every alert fired here (after its receipt is written); must not raise
        and must not block."""
        self._fired: dict[tuple[str, str, str], float] = {}

    async def check(self, permit: Permit) -> None:
        """Fire the thresholds the call's charge reached; never fails the call."""
        policy = permit.policy
        if not policy.per_run_alert_at and not any(b.alert_at for b in policy.per_window):
            return  # most policies set no alerts: nothing to build per call
        tenant = permit.tenant_id
        run = permit.run_id or permit.request_id
        now = self.trail.clock.time()
        # Thresholds this process already saw fire need no ledger call until their window ends.
        accounts = [
            a
            for a in budget_accounts(policy, run, permit.started_at)
            if a.alert_at
            and any(
                self._fired.get((tenant, a.key, format(t, "f")), 0.0) <= now for t in a.alert_at
            )
        ]
        if not accounts:
            return
        try:
            spent = await self.ledger.balances(tenant_id=tenant, keys=[a.key for a in accounts])
            for account in accounts:
                committed = spent[account.key].committed_nanos
                for threshold in reached(account, committed):
                    mark = (tenant, account.key, format(threshold, "f"))
                    if self._fired.get(mark, 0.0) > now:
                        continue
                    first = await self.ledger.mark_alert(
                        tenant_id=tenant,
                        key=account.key,
                        threshold=mark[2],
                        expires_at=account.expires_at,
                    )
                    if len(self._fired) > _MAX_REMEMBERED:
                        self._fired = {k: end for k, end in self._fired.items() if end > now}
                    self._fired[mark] = account.expires_at
                    if first:
                        await self._fire(permit, account, threshold, committed)
        except Exception as exc:
            logger.error("budget alerts of tenant %s failed: %s", tenant, type(exc).__name__)

    async def _fire(
        self, permit: Permit, account: Account, threshold: Decimal, committed: int
    ) -> None:
        clock = self.trail.clock
        now = clock.time()
        receipt_id = new_receipt_id()
        alert = BudgetAlert(
            tenant_id=permit.tenant_id,
            budget=account.budget,
            account=account.key,
            threshold=threshold,
            limit_nanos=account.limit_nanos,
            spent_nanos=committed,
            hard_stop=account.hard_stop,
            window_ends_at=None if account.resets_at is None else iso_utc(account.resets_at),
            run_id=permit.run_id,
            request_id=permit.request_id,
            receipt_id=receipt_id,
            fired_at=iso_utc(now),
        )
        subject = CallSubject(
            receipt_id=receipt_id,
            request_id=f"alert:{account.key}:{alert.threshold_text}",
            tenant_id=permit.tenant_id,
            run_id=permit.run_id,
            provider=permit.provider,
            model=permit.model,
            capability="budget:alert",
            started_at=now,
            started_mono=clock.monotonic(),
        )
        outcome = Outcome(
            decision=Decision(True, "budget_alert", account.budget),
            status="alert",
            error=alert.describe(),
        )
        receipt = self.trail.receipt(subject, outcome, permit.policy, permit.pricing)
        # Kept out of on_receipt: an alert is not a call, and must not count as one.
        await self.trail.write(receipt, notify=False)
        logger.warning(
            "budget alert: tenant %s: %s (account %s)",
            alert.tenant_id,
            alert.describe(),
            alert.account,
        )
        if self.on_alert is not None:
            self.on_alert(alert)

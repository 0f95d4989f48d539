"""``GET /metrics``: the Prometheus scrape."""

from __future__ import annotations

from aiohttp import web

from aegis.proxy.metrics import ALL_BUDGETS_UP_TO, render
from aegis.proxy.operator import OPERATOR
from aegis.proxy.state import GATE
from aegis.proxy.usage import BudgetUsage, budget_usage

__all__ = ["routes"]


async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: read the budgets from the ledger, then render everything."""
    operator = request.app[OPERATOR]
    gate = request.app[GATE]
    now = gate.clock.time()
    budgets: list[BudgetUsage] = []
    tenants = [t for t in operator.tenants.values() if t.policy.per_window]
    if len(tenants) > ALL_BUDGETS_UP_TO:
        tenants = [t for t in tenants if t.tenant_id in operator.stats.active]
    for tenant in tenants:
        budgets.extend(await budget_usage(gate, tenant.policy, now))
    operator.collector.budgets = budgets
    return render(operator.registry)


def routes() -> list[web.RouteDef]:
    return [web.get("/metrics", metrics)]

"""``GET /metrics``: the Prometheus scrape, closed by default.

The scrape names every tenant and its limits, so it is served only to a request with a metrics
key (``[observability] metrics_keys``, sent as ``Authorization: Bearer <key>``), or without a
key on the separate ``metrics_listen`` address (a second listener serving nothing else).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from aegis.core import hash_key
from aegis.proxy.auth import presented_key
from aegis.proxy.errors import Unauthorized
from aegis.proxy.metrics import ALL_BUDGETS_UP_TO, render
from aegis.proxy.operator import OPERATOR
from aegis.proxy.state import GATE
from aegis.proxy.usage import BudgetUsage, budget_usage

__all__ = ["metrics_listener_context", "routes"]

logger = logging.getLogger(__name__)


async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics`` on the main listener: a metrics key is required."""
    allowed = request.app[OPERATOR].metrics_hashes
    key = presented_key(request)
    if not allowed:
        raise Unauthorized(
            "metrics are closed: configure [observability] metrics_keys (send one as "
            "'Authorization: Bearer <key>') or metrics_listen",
            code="metrics_key_required",
        )
    if not key:
        raise Unauthorized("missing metrics key", code="missing_api_key")
    if hash_key(key) not in allowed:
        raise Unauthorized("invalid metrics key", code="invalid_api_key")
    return await scrape(request.app)


async def scrape(app: web.Application) -> web.StreamResponse:
    """Read the budgets from the ledger, then render everything."""
    operator = app[OPERATOR]
    gate = app[GATE]
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


def metrics_listener_context(listen: str) -> Any:
    """A cleanup context serving ``/metrics`` of the app on ``listen`` (``host:port``)."""
    host, _, port = listen.rpartition(":")

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await scrape(app)

        side = web.Application()
        side.router.add_get("/metrics", handler)
        runner = web.AppRunner(side, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host.strip("[]"), int(port))
        await site.start()
        logger.info("metrics served on http://%s/metrics", listen)
        yield
        await runner.cleanup()

    return ctx

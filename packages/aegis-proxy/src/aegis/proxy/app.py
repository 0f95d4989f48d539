"""The proxy application: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Final

from aiohttp import web

from aegis.core import AdmissionLog, Gate, InMemoryPolicyProvider
from aegis.core.recovery import post_all_owed, recover_admissions
from aegis.proxy import (
    admin,
    anthropic_api,
    free_api,
    gemini_api,
    health,
    metrics_api,
    openai_api,
    usage_api,
    web_dashboard,
)
from aegis.proxy.alert_webhook import alert_webhook_context
from aegis.proxy.auth import KeyIndex
from aegis.proxy.config import Settings
from aegis.proxy.control_plane import control_plane_context, plane_for
from aegis.proxy.errors import error_middleware
from aegis.proxy.governance import (
    build_pricing,
    open_admission_log,
    open_journal,
    open_ledger,
    open_trail,
    other_admission_logs,
    receipt_signer,
)
from aegis.proxy.idempotency import IdempotencyStore, RedisIdempotencyStore
from aegis.proxy.operator import OPERATOR, Operator, operator_context, operator_middleware
from aegis.proxy.ratelimit_headers import add_rate_limit_headers
from aegis.proxy.routing import Router
from aegis.proxy.state import (
    CONTROL,
    GATE,
    IDEMPOTENCY,
    KEYS,
    POLICIES,
    RESPONSE_OWNERS,
    ROUTER,
    SETTINGS,
    UPSTREAMS,
)
from aegis.proxy.stored_responses import ResponseOwners
from aegis.proxy.upstream import open_upstream

__all__ = ["apply_settings", "create_app"]

logger = logging.getLogger(__name__)

_POST_OWED_EVERY_S: Final = 0.5


def apply_settings(app: web.Application, settings: Settings) -> None:
    """Swap in new tenants, keys and policies atomically (hot reload); requests in flight keep
    the objects they already hold."""
    app[POLICIES].replace({t.tenant_id: t.policy for t in settings.tenants.values()})
    if KEYS in app:
        app[KEYS].apply(settings)
    else:
        app[KEYS] = KeyIndex.from_settings(settings, app[CONTROL])
    operator = app.get(OPERATOR)
    if operator is not None:
        operator.apply(settings)


async def _governance(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    signer = receipt_signer(settings)
    ledger = open_ledger(settings)
    try:
        # Opening the trail now (and reading its tail) means a trail that cannot be written
        # stops the proxy at startup, before it could serve a single unaudited call.
        sink, trail = await open_trail(settings, signer)
    except Exception:
        await ledger.close()
        logger.critical(
            "receipt trail %s cannot be used; refusing to start", settings.receipts.path
        )
        raise
    operator = app.get(OPERATOR)
    if operator is not None:
        operator.receipts_path = trail  # this replica's own trail (verify, dashboard)
    app[GATE] = Gate(
        policy_provider=app[CONTROL],
        ledger=ledger,
        pricing=app[ROUTER].pricing,
        signer=signer,
        sink=sink,
        # A new chain names its trail slot, so the verifier sees two trails swapped.
        chain_id=f"{trail.name}-{os.urandom(8).hex()}",
        journal=open_journal(settings, trail),
        admissions=open_admission_log(settings, trail, ledger),
    )
    # Calls a crash left in flight are receipted and charged before anything new is served.
    recovered = await recover_admissions(app[GATE])
    for other in other_admission_logs(trail, ledger, app[GATE].admissions):
        recovered += await recover_admissions(app[GATE], other)
        await other.close()
        if isinstance(other, AdmissionLog) and other.path is not None:
            other.path.unlink()  # every call in it is receipted now
    if recovered:
        logger.warning("%d call(s) left in flight by a crash were receipted and charged", recovered)
    poster = asyncio.create_task(_post_owed(app[GATE]))
    yield
    poster.cancel()
    with suppress(asyncio.CancelledError):
        await poster
    await app[GATE].admissions.close()
    with suppress(Exception):
        await sink.close()
    await ledger.close()


async def _post_owed(gate: Gate) -> None:
    """Post charges the ledger failed to take as soon as it takes them again (each tenant's
    are also posted before its next admission)."""
    while True:
        await asyncio.sleep(_POST_OWED_EVERY_S)
        if gate.unposted:
            await post_all_owed(gate)


async def _upstreams(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[UPSTREAMS] = {
        name: open_upstream(provider, settings.server)
        for name, provider in settings.providers.items()
    }
    yield
    await asyncio.gather(*(u.close() for u in app[UPSTREAMS].values()))


async def _close_idempotency(app: web.Application) -> None:
    await app[IDEMPOTENCY].close()


def create_app(settings: Settings) -> web.Application:
    """The proxy as an aiohttp application (tests call this directly)."""
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.server.max_body_bytes
    )
    app[SETTINGS] = settings
    pricing = build_pricing(settings)
    app[ROUTER] = Router(settings.providers, pricing, settings.default_provider)
    app[POLICIES] = InMemoryPolicyProvider()
    app[CONTROL] = plane_for(settings, app[POLICIES])
    if settings.ledger.backend == "redis":
        # Shared by the replicas, like the budgets.
        app[IDEMPOTENCY] = RedisIdempotencyStore(
            settings.ledger.url, prefix=settings.ledger.key_prefix
        )
    else:
        app[IDEMPOTENCY] = IdempotencyStore()
    app.on_cleanup.append(_close_idempotency)
    app[RESPONSE_OWNERS] = ResponseOwners()
    operator = app[OPERATOR] = Operator(settings, pricing)
    app[CONTROL].on_tenant = operator.stats.remember_tenant
    apply_settings(app, settings)
    app.cleanup_ctx.append(control_plane_context(app[CONTROL]))
    app.cleanup_ctx.append(_governance)
    if settings.alerts.webhook_url is not None:
        app.cleanup_ctx.append(alert_webhook_context(settings.alerts))  # needs the Gate
    app.cleanup_ctx.append(operator_context(operator, settings))  # needs the Gate
    app.cleanup_ctx.append(_upstreams)
    if operator.is_active:
        # Outermost, so it sees the answers the error middleware makes.
        app.middlewares.insert(0, operator_middleware(operator))
    app.on_response_prepare.append(add_rate_limit_headers)
    app.add_routes(health.routes())
    app.add_routes(openai_api.routes())
    app.add_routes(gemini_api.routes())
    app.add_routes(free_api.routes())
    app.add_routes(anthropic_api.routes())
    app.add_routes(usage_api.routes())
    app.add_routes(admin.routes())
    if settings.observability.metrics:
        app.add_routes(metrics_api.routes())
        if settings.observability.metrics_listen is not None:
            app.cleanup_ctx.append(
                metrics_api.metrics_listener_context(settings.observability.metrics_listen)
            )
    if settings.observability.dashboard:
        app.add_routes(web_dashboard.routes())
    return app

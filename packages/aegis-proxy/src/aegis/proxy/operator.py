"""The operator surface's wiring: the receipt hook on the Gate, the per-request middleware
(latencies, the access line, the server span) and the state the admin API reads.

Per proxied request the middleware adds two monotonic clock reads, a context variable and one
histogram update per latency; per receipt the hook adds a few dictionary updates. Tracing and
the access line cost nothing when they are off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from time import monotonic
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from aegis.core import HmacSha256Signer, PricingTable, Receipt
from aegis.proxy.access_log import (
    access_record,
    flush_access_log,
    log_access,
    logger as access_logger,
)
from aegis.proxy.config import ObservabilitySettings, Settings, TenantSettings
from aegis.proxy.governance import receipt_signer
from aegis.proxy.metrics import ProxyCollector, new_registry
from aegis.proxy.state import GATE, TRACER_PROVIDER
from aegis.proxy.stats import ReceiptStats
from aegis.proxy.timing import RequestTiming, current_timing

if TYPE_CHECKING:
    from aegis.proxy.tracing import Tracing

__all__ = ["OPERATOR", "Operator", "operator_context", "operator_middleware"]

logger = logging.getLogger(__name__)

# Routes that are the operator surface itself, or probes: not proxied requests.
_OWN_PATHS: Final = ("/admin/", "/dashboard", "/metrics", "/healthz", "/readyz", "/v1/aegis/")
_CURRENT: Final = current_timing()


class Operator:
    """The operator surface's state in one app."""

    def __init__(self, settings: Settings, pricing: PricingTable) -> None:
        self.settings: ObservabilitySettings = settings.observability
        self.stats = ReceiptStats(pricing, settings.tenants)
        self.collector = ProxyCollector(self.stats)
        self.registry = new_registry(self.collector)
        self.provider_types = {name: p.type for name, p in settings.providers.items()}
        self.receipts_sink = settings.receipts.sink
        self.receipts_path = settings.receipts.path
        self.tracing: Tracing | None = None
        self.signer: HmacSha256Signer | None = None
        self.last_verification: dict[str, Any] | None = None
        self.verifying: asyncio.Lock = asyncio.Lock()
        self.tenants: Mapping[str, TenantSettings] = {}
        self.admin_hashes: frozenset[str] = frozenset()
        self.metrics_hashes: frozenset[str] = frozenset()
        self.apply(settings)

    @property
    def is_active(self) -> bool:
        """Whether anything observes requests (else the middleware and hook stay out)."""
        s = self.settings
        return (
            s.metrics
            or s.access_log
            or s.dashboard
            or s.tracing != "off"
            or bool(self.admin_hashes)
        )

    def apply(self, settings: Settings) -> None:
        """Take up reloaded tenants and admin keys."""
        self.tenants = dict(settings.tenants)
        self.stats.tenants = frozenset(settings.tenants)
        self.admin_hashes = frozenset(settings.admin.api_keys)
        self.metrics_hashes = frozenset(settings.observability.metrics_keys)

    def on_receipt(self, receipt: Receipt) -> None:
        """The Gate's hook: count the receipt, file it with its request, trace it."""
        try:
            self.stats.observe(receipt)
            timing = _CURRENT.get()
            if timing is not None:
                timing.receipts.append(receipt)
            if self.tracing is not None:
                self.tracing.record(receipt)
        except Exception:
            # The receipt is durable already; observing it must never fail the call.
            logger.exception("observing receipt %s failed", receipt.receipt_id)


def operator_context(
    operator: Operator, settings: Settings
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context: hook the Gate, open tracing; undo both on shutdown."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        gate = app[GATE]
        operator.signer = receipt_signer(settings)
        owned = None
        if operator.settings.tracing != "off":
            from aegis.proxy.tracing import Tracing, build_tracer_provider

            provider = app.get(TRACER_PROVIDER)
            if provider is None:
                provider, is_owned = build_tracer_provider(operator.settings)
                owned = provider if is_owned else None
            operator.tracing = Tracing(provider, operator.provider_types)
        if operator.is_active:
            gate.on_receipt = operator.on_receipt
        flusher = asyncio.create_task(_flush_every_second())
        yield
        flusher.cancel()
        with suppress(asyncio.CancelledError):
            await flusher
        flush_access_log()
        gate.on_receipt = None
        operator.tracing = None
        shutdown = getattr(owned, "shutdown", None)
        if shutdown is not None:
            shutdown()

    return ctx


async def _flush_every_second() -> None:
    while True:
        await asyncio.sleep(1.0)
        flush_access_log()


def operator_middleware(operator: Operator) -> Middleware:
    """Times each proxied request, writes its access line and its server span."""
    stats = operator.stats
    log_enabled = operator.settings.access_log

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(_OWN_PATHS):
            return await handler(request)
        started = monotonic()
        timing = RequestTiming(started)
        token = _CURRENT.set(timing)
        resource = request.match_info.route.resource
        route = "other" if resource is None else resource.canonical
        tracing = operator.tracing
        span = None if tracing is None else tracing.start_request(request, route)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code for it)
            raise
        finally:
            _CURRENT.reset(token)
            elapsed = monotonic() - started
            first = timing.first_chunk_mono
            stats.observe_request(
                route,
                elapsed,
                timing.upstream_s,
                first - started if first else None,
                timing.attempts,
            )
            if span is not None:
                span.end(status)
            if log_enabled and access_logger.isEnabledFor(logging.INFO):
                log_access(
                    access_record(
                        method=request.method,
                        route=route,
                        status=status,
                        receipts=timing.receipts,
                        latency_s=elapsed,
                        upstream_s=timing.upstream_s,
                        attempts=timing.attempts,
                    )
                )

    return middleware


OPERATOR = web.AppKey("operator", Operator)
"""The operator surface (metrics, admin API, dashboard) of an app."""

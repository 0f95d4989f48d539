"""``GET /metrics``: the receipt counts of :class:`~aegis.proxy.stats.ReceiptStats` and the
ledger's budgets, in Prometheus' text format.

Counters and histograms are kept as plain integers by ``ReceiptStats`` and only turned into
metric families when scraped, so the hot path never takes prometheus-client's locks. Budget
gauges are read from the ledger at scrape time (they are what admission checks against).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from aegis.proxy.stats import Histogram, ReceiptStats
from aegis.proxy.usage import BudgetUsage

__all__ = ["ALL_BUDGETS_UP_TO", "ProxyCollector", "new_registry", "render"]

_NANOS: Final = 1_000_000_000
ALL_BUDGETS_UP_TO: Final = 1000
"""With more tenants than this, budget gauges cover the tenants active since the start only
(a scrape reads the ledger once per tenant)."""


def _usd(nanos: int) -> float:
    # int / int is correctly rounded: the float nearest the exact decimal amount.
    return nanos / _NANOS


class ProxyCollector(Collector):
    """Turns the proxy's counts into metric families when scraped."""

    def __init__(self, stats: ReceiptStats) -> None:
        self.stats = stats
        self.budgets: Sequence[BudgetUsage] = ()
        """The budgets as read from the ledger right before this scrape."""

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        requests = CounterMetricFamily(
            "aegis_requests",
            "Gate decisions, one per receipt (each fallback attempt is one), by outcome.",
            labels=("tenant", "provider", "model", "outcome", "reason", "budget"),
        )
        for key, count in stats.decisions.items():
            requests.add_metric(key, count)
        yield requests
        tokens = CounterMetricFamily(
            "aegis_tokens",
            "Tokens billed on receipts, by kind (input includes cached_input, output reasoning).",
            labels=("tenant", "provider", "model", "kind"),
        )
        for (tenant, provider, model, kind), count in stats.tokens.items():
            tokens.add_metric((tenant, provider, model, kind), count)
        yield tokens
        spend = CounterMetricFamily(
            "aegis_spend_usd",
            "USD charged on receipts (the exact sum of actual_usd).",
            labels=("tenant", "provider", "model"),
        )
        for (tenant, provider, model), nanos in stats.spend_nanos.items():
            spend.add_metric((tenant, provider, model), _usd(nanos))
        yield spend
        yield from self._budget_gauges()
        yield _histogram(
            "aegis_request_duration_seconds",
            "Whole request time at the proxy (streams: until the last byte).",
            stats.request_s,
        )
        yield _histogram(
            "aegis_upstream_duration_seconds",
            "Time waiting on upstreams (send to settle), summed over fallback attempts.",
            stats.upstream_s,
        )
        yield _histogram(
            "aegis_proxy_overhead_seconds",
            "Request time minus upstream time: what the proxy itself adds.",
            stats.overhead_s,
        )
        yield _histogram(
            "aegis_time_to_first_token_seconds",
            "Streams: from the request's arrival to the first upstream event.",
            stats.first_token_s,
        )
        attempts = CounterMetricFamily(
            "aegis_upstream_attempts", "Upstream calls sent.", labels=("route",)
        )
        for route, count in stats.upstream_attempts.items():
            attempts.add_metric((route,), count)
        yield attempts
        fallbacks = CounterMetricFamily(
            "aegis_fallback_attempts",
            "Upstream calls beyond a request's first (fallback to the next provider).",
            labels=("route",),
        )
        for route, count in stats.fallback_attempts.items():
            fallbacks.add_metric((route,), count)
        yield fallbacks

    def _budget_gauges(self) -> Iterable[Metric]:
        labels = ("tenant", "budget")
        limit = GaugeMetricFamily(
            "aegis_budget_limit_usd", "Each window budget's limit.", labels=labels
        )
        spent = GaugeMetricFamily(
            "aegis_budget_spent_usd", "Charged in the current window.", labels=labels
        )
        reserved = GaugeMetricFamily(
            "aegis_reserved_usd",
            "Reserved by calls in flight and not yet settled, per window budget.",
            labels=labels,
        )
        remaining = GaugeMetricFamily(
            "aegis_budget_remaining_usd",
            "Limit minus spent minus reserved in the current window.",
            labels=labels,
        )
        for b in self.budgets:
            values = (b.tenant_id, b.budget)
            limit.add_metric(values, _usd(b.limit_nanos))
            spent.add_metric(values, _usd(b.committed_nanos))
            reserved.add_metric(values, _usd(b.pending_nanos))
            remaining.add_metric(values, _usd(b.remaining_nanos))
        return (limit, spent, reserved, remaining)


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=("route",))
    bounds = [*(repr(float(b)) for b in histogram.bounds), "+Inf"]
    for labels, (counts, total) in histogram.series.items():
        cumulative = 0
        buckets = []
        for bound, count in zip(bounds, counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        family.add_metric(labels, buckets, total[0])
    return family


def new_registry(collector: ProxyCollector) -> CollectorRegistry:
    """A registry of this app's metrics only (several apps in one process stay apart)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> web.Response:
    """The scrape answer."""
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response

"""What the operator surface counts, derived from receipts: every Gate decision leaves exactly
one receipt, so counting receipts is what makes the metrics agree with the trail.

Labels stay bounded whatever clients send: a tenant that is not configured (possible only
through a trusted ``x-tenant-id``) counts as ``other``, and so does a model the price table does
not know. Counts are integers (spend in nano-USD), so sums are exact; they become floats only
when a scraper reads them.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final, NamedTuple

from aegis.core import NANOS_PER_USD, PricingTable, Receipt

__all__ = [
    "DURATION_BUCKETS_S",
    "OTHER",
    "OVERHEAD_BUCKETS_S",
    "TOKEN_KINDS",
    "DecisionKey",
    "Histogram",
    "ReceiptStats",
]

OTHER: Final = "other"
TOKEN_KINDS: Final = ("input", "cached_input", "output", "reasoning")
DURATION_BUCKETS_S: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
OVERHEAD_BUCKETS_S: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
TIMELINE_MINUTES: Final = 180
RECENT_RECEIPTS: Final = 2000


class DecisionKey(NamedTuple):
    """The labels of one decision counter (a plain tuple on the hot path)."""

    tenant: str
    provider: str
    model: str
    outcome: str
    """``ok``, ``denied``, ``upstream_error`` or ``cancelled`` (the receipt's status)."""
    reason: str
    """Why a call was denied (``budget_exceeded``, ``model_not_allowed`` ...), else empty."""
    budget: str
    """The budget that denied it (``day``, ``per_run`` ...), else empty."""


def _nanos(usd: str) -> int:
    # Receipts carry amounts as format_usd wrote them (at most 9 decimals, never negative):
    # integer arithmetic on the digits is exact and much cheaper than a Decimal.
    whole, _, frac = usd.partition(".")
    nanos = int(whole) * NANOS_PER_USD
    return nanos + int(frac.ljust(9, "0")) if frac else nanos


class Histogram:
    """A labelled histogram kept as plain integer counts (observing is a bisect and two adds)."""

    __slots__ = ("bounds", "series")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        entry = self.series.get(labels)
        if entry is None:
            entry = self.series[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        entry[0][bisect_left(self.bounds, value)] += 1
        entry[1][0] += value


STORE_TENANT_LABELS: Final = 1000
"""How many store tenants get labels and usage of their own since the start."""


class ReceiptStats:
    """Aggregates of every receipt since the process started, and the latest receipts."""

    def __init__(self, pricing: PricingTable, tenants: Iterable[str]) -> None:
        self._pricing = pricing
        self._model_labels: dict[str, str] = {m: m for m in pricing.models()}
        self.tenants: frozenset[str] = frozenset(tenants)
        """Configured tenants (replaced on reload); others count as ``other``."""
        self.store_tenants: set[str] = set()
        """Tenants of the control-plane store that called since the start (at most
        :data:`STORE_TENANT_LABELS`, so labels stay bounded); others count as ``other``."""
        self.active: set[str] = set()
        """Tenants with a receipt since the start (``other`` included)."""
        self.decisions: dict[tuple[str, str, str, str, str, str], int] = {}
        """Counts by the fields of :class:`DecisionKey`."""
        self.tokens: dict[tuple[str, str, str, str], int] = {}
        """(tenant, provider, model, kind) -> tokens."""
        self.spend_nanos: dict[tuple[str, str, str], int] = {}
        """(tenant, provider, model) -> charged nano-USD."""
        self.timeline: dict[str, dict[int, int]] = {}
        """tenant -> {minute (epoch s) -> charged nano-USD}, the last few hours."""
        self.recent: deque[bytes] = deque(maxlen=RECENT_RECEIPTS)
        """The latest receipts' canonical lines: bytes, which the garbage collector never
        has to walk (receipt objects kept here made every collection longer)."""
        self.request_s = Histogram(DURATION_BUCKETS_S)
        self.upstream_s = Histogram(DURATION_BUCKETS_S)
        self.overhead_s = Histogram(OVERHEAD_BUCKETS_S)
        self.first_token_s = Histogram(DURATION_BUCKETS_S)
        self.upstream_attempts: dict[str, int] = {}
        self.fallback_attempts: dict[str, int] = {}
        self.listeners: list[Callable[[Receipt], None]] = []
        """Also called with every receipt (tracing, the access log's request record)."""

    @property
    def pricing(self) -> PricingTable:
        return self._pricing

    @pricing.setter
    def pricing(self, table: PricingTable) -> None:
        """Take up a reloaded price list: its models get labels of their own from now on."""
        self._pricing = table
        self._model_labels = {m: m for m in table.models()}

    def model_label(self, model: str | None) -> str:
        """The model as a label: a priced model's name, else ``other``."""
        if model is None:
            return OTHER
        label = self._model_labels.get(model)
        if label is not None:
            return label
        price = self._pricing.get(model)
        if price is None:
            return OTHER  # never remembered: clients choose these strings
        self._model_labels[model] = price.model
        return price.model

    def tenant_label(self, tenant_id: str) -> str:
        if tenant_id in self.tenants or tenant_id in self.store_tenants:
            return tenant_id
        return OTHER

    def remember_tenant(self, tenant_id: str) -> None:
        """A store tenant was loaded: count it under its own id while there is room."""
        if len(self.store_tenants) < STORE_TENANT_LABELS:
            self.store_tenants.add(tenant_id)

    def observe(self, receipt: Receipt) -> None:
        """Count one receipt (the Gate's ``on_receipt`` hook; must not raise)."""
        tenant = self.tenant_label(receipt.tenant_id)
        provider = receipt.provider or ""
        model = self.model_label(receipt.model)
        decision = receipt.decision
        key = (
            tenant,
            provider,
            model,
            receipt.status,
            decision.reason or "",
            decision.budget or "",
        )
        decisions = self.decisions
        decisions[key] = decisions.get(key, 0) + 1
        self.active.add(tenant)
        usage = receipt.usage
        if usage is not None:
            tokens = self.tokens
            for kind, count in (
                ("input", usage.input_tokens),
                ("cached_input", usage.cached_input_tokens),
                ("output", usage.output_tokens),
                ("reasoning", usage.reasoning_tokens),
            ):
                if count:
                    tk = (tenant, provider, model, kind)
                    tokens[tk] = tokens.get(tk, 0) + count
        charged = _nanos(receipt.actual_usd)
        sk = (tenant, provider, model)
        self.spend_nanos[sk] = self.spend_nanos.get(sk, 0) + charged
        if charged:
            minute = int(time.time()) // 60 * 60
            line = self.timeline.setdefault(tenant, {})
            line[minute] = line.get(minute, 0) + charged
            if len(line) > TIMELINE_MINUTES:
                for old in sorted(line)[: len(line) - TIMELINE_MINUTES]:
                    del line[old]
        self.recent.append(receipt.canonical_line())
        for listener in self.listeners:
            listener(receipt)

    def observe_request(
        self,
        route: str,
        request_s: float,
        upstream_s: float,
        first_token_s: float | None,
        attempts: int,
    ) -> None:
        """Record one proxied request's latencies (only requests that reached an upstream have
        upstream and overhead times)."""
        labels = (route,)
        self.request_s.observe(labels, request_s)
        if attempts:
            self.upstream_s.observe(labels, upstream_s)
            self.overhead_s.observe(labels, max(0.0, request_s - upstream_s))
            self.upstream_attempts[route] = self.upstream_attempts.get(route, 0) + attempts
            if attempts > 1:
                self.fallback_attempts[route] = self.fallback_attempts.get(route, 0) + attempts - 1
        if first_token_s is not None:
            self.first_token_s.observe(labels, first_token_s)

"""Fixtures for the OpenAI adapter: the fake upstream, a real SDK client, a Gate to govern."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fakes.openai_upstream import FakeOpenAI, FakeUpstream
from openai import AsyncOpenAI

from aegis.core import (
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    ManualClock,
    MemoryLedger,
    MemoryReceiptSink,
    Receipt,
    default_pricing_table,
    parse_usd,
    window_span,
)

TENANT = "acme"


@dataclass
class Governance:
    """A Gate over an in-memory ledger and receipt sink, with ways to read them back."""

    gate: Gate
    ledger: MemoryLedger
    sink: MemoryReceiptSink
    clock: ManualClock

    @property
    def receipts(self) -> list[Receipt]:
        return self.sink.receipts

    @property
    def last(self) -> Receipt:
        return self.sink.receipts[-1]

    async def month(self) -> tuple[int, int]:
        """(committed, pending) nano-USD of the tenant's month budget."""
        key, _ = window_span("month", self.clock.time())
        balance = (await self.ledger.balances(tenant_id=TENANT, keys=[key]))[key]
        return balance.committed_nanos, balance.pending_nanos

    def charged_nanos(self) -> int:
        """The sum of every receipt's charge."""
        return sum(parse_usd(r.actual_usd) for r in self.receipts)


MakeGovernance = Callable[..., Governance]


@pytest.fixture
def make_governance(clock: ManualClock) -> MakeGovernance:
    """``make_governance(**policy)``: a fresh Gate for tenant ``acme`` (default: $10 a month)."""

    def make(**policy: Any) -> Governance:
        policy.setdefault("budgets", {"per_window": [{"window": "month", "limit_usd": "10"}]})
        ledger = MemoryLedger(clock=clock)
        sink = MemoryReceiptSink()
        gate = Gate(
            policy_provider=InMemoryPolicyProvider({TENANT: policy}),
            ledger=ledger,
            pricing=default_pricing_table(),
            signer=HmacSha256Signer(key_id="k1", secret=b"adapter-tests-secret-key"),
            sink=sink,
            clock=clock,
        )
        return Governance(gate, ledger, sink, clock)

    return make


@pytest.fixture
def gov(make_governance: MakeGovernance) -> Governance:
    return make_governance()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as running:
        yield running


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeOpenAI:
    return upstream.fake


@pytest.fixture
async def client(upstream: FakeUpstream) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=upstream.base_url, api_key="test") as sdk:
        yield sdk

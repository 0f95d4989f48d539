"""Fixtures for the Anthropic adapter: the fake upstream, a real SDK client, a Gate to govern."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from adapter_anthropic._support import API_KEY, TENANT, Governance, MakeGovernance
from anthropic import AsyncAnthropic
from fakes.anthropic_upstream import FakeAnthropic, FakeAnthropicServer

from aegis.core import (
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    ManualClock,
    MemoryLedger,
    MemoryReceiptSink,
    default_pricing_table,
)


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
async def server() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer(FakeAnthropic(api_key=API_KEY)) as running:
        yield running


@pytest.fixture
def fake(server: FakeAnthropicServer) -> FakeAnthropic:
    return server.fake


@pytest.fixture
async def client(server: FakeAnthropicServer) -> AsyncIterator[AsyncAnthropic]:
    async with AsyncAnthropic(base_url=server.url, api_key=API_KEY, max_retries=2) as sdk:
        yield sdk

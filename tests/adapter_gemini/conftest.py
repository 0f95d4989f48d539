"""Fixtures for the Gemini adapter: the fake Gemini API, a real google-genai client, a Gate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from adapter_gemini._support import TENANT, GateFactory, Governed
from fakes.gemini_upstream import FakeGemini, FakeGeminiServer
from google import genai
from google.genai import types

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
def make_gate(clock: ManualClock) -> GateFactory:
    """Build a Gate for tenant ``acme``: a day budget, an optional run budget and clamping."""

    def build(*, day_usd: str = "100", per_run_usd: str | None = None, **policy: Any) -> Governed:
        budgets: dict[str, Any] = {
            "per_window": [{"window": "day", "limit_usd": day_usd, "hard_stop": True}]
        }
        if per_run_usd is not None:
            budgets["per_run_usd"] = per_run_usd
        data: Mapping[str, Any] = {"budgets": budgets, **policy}
        ledger = MemoryLedger(clock=clock)
        sink = MemoryReceiptSink()
        gate = Gate(
            policy_provider=InMemoryPolicyProvider({TENANT: data}),
            ledger=ledger,
            pricing=default_pricing_table(),
            signer=HmacSha256Signer(key_id="test", secret=b"k" * 32),
            sink=sink,
            clock=clock,
        )
        return Governed(gate, ledger, sink)

    return build


@pytest.fixture
async def upstream() -> AsyncIterator[FakeGeminiServer]:
    """The fake Gemini API on a free local port."""
    async with FakeGeminiServer(FakeGemini()) as server:
        yield server


@pytest.fixture
async def client(upstream: FakeGeminiServer) -> AsyncIterator[genai.Client]:
    """The real google-genai client, pointed at the fake."""
    c = genai.Client(
        api_key="test",
        http_options=types.HttpOptions(base_url=upstream.url, api_version="v1beta"),
    )
    yield c
    await c.aio.aclose()

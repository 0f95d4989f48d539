"""Shared by the Anthropic adapter's tests: the tenant, the upstream key, the Governance view."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aegis.core import Gate, ManualClock, MemoryLedger, MemoryReceiptSink, Receipt, window_span

TENANT = "acme"
API_KEY = "sk-ant-canary-0123456789abcdef"
"""The upstream key the tests use; it must never show up in a receipt or an error text."""


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


MakeGovernance = Callable[..., Governance]

"""Shared pieces of the Gemini adapter tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aegis.core import Gate, MemoryLedger, MemoryReceiptSink

TENANT = "acme"

# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates; not ours to fix.
SDK_WARNING = "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"


@dataclass
class Governed:
    """A Gate with its in-memory ledger and receipt sink, for one test."""

    gate: Gate
    ledger: MemoryLedger
    sink: MemoryReceiptSink

    async def pending_nanos(self) -> int:
        """Reservations still held across the tenant's accounts."""
        keys = ["run:r1", "day:2026-11-26"]
        balances = await self.ledger.balances(tenant_id=TENANT, keys=keys)
        return sum(b.pending_nanos for b in balances.values())


GateFactory = Callable[..., Governed]

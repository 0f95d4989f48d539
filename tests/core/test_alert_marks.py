"""Ledger contract: an alert threshold fires once per window, across every process sharing it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fakes.redis_server import RedisServer

from aegis.core import Ledger, ManualClock, RedisLedger, SqliteLedger


async def test_only_the_first_mark_of_a_window_fires(ledger: Ledger, clock: ManualClock) -> None:
    end = clock.time() + 60
    assert await ledger.mark_alert(tenant_id="acme", key="day:x", threshold="0.8", expires_at=end)
    assert not await ledger.mark_alert(
        tenant_id="acme", key="day:x", threshold="0.8", expires_at=end
    )
    # Other thresholds, accounts and tenants are marks of their own.
    assert await ledger.mark_alert(tenant_id="acme", key="day:x", threshold="1", expires_at=end)
    assert await ledger.mark_alert(tenant_id="acme", key="day:y", threshold="0.8", expires_at=end)
    assert await ledger.mark_alert(tenant_id="beta", key="day:x", threshold="0.8", expires_at=end)


async def test_a_mark_ends_with_its_window(ledger: Ledger, clock: ManualClock) -> None:
    end = clock.time() + 60
    assert await ledger.mark_alert(tenant_id="acme", key="k", threshold="0.5", expires_at=end)
    clock.advance(61)
    # The window is over: a late caller does not fire for it ...
    assert not await ledger.mark_alert(tenant_id="acme", key="k", threshold="0.5", expires_at=end)
    # ... and the next window (the same key, as for a run) fires afresh.
    later = clock.time() + 60
    assert await ledger.mark_alert(tenant_id="acme", key="k", threshold="0.5", expires_at=later)
    assert not await ledger.mark_alert(tenant_id="acme", key="k", threshold="0.5", expires_at=later)


async def test_concurrent_marks_fire_exactly_once(ledger: Ledger, clock: ManualClock) -> None:
    end = clock.time() + 60
    fired = await asyncio.gather(
        *(
            ledger.mark_alert(tenant_id="acme", key="day:x", threshold="0.8", expires_at=end)
            for _ in range(50)
        )
    )
    assert fired.count(True) == 1


async def test_two_sqlite_ledgers_on_one_file_fire_once(tmp_path: Path, clock: ManualClock) -> None:
    first = SqliteLedger(tmp_path / "l.db", clock=clock)
    second = SqliteLedger(tmp_path / "l.db", clock=clock, synchronous="normal")
    end = clock.time() + 60
    try:
        fired = await asyncio.gather(
            *(
                replica.mark_alert(tenant_id="acme", key="day:x", threshold="1", expires_at=end)
                for _ in range(20)
                for replica in (first, second)
            )
        )
    finally:
        await first.close()
        await second.close()
    assert fired.count(True) == 1


async def test_two_redis_replicas_fire_once(redis_server: RedisServer, clock: ManualClock) -> None:
    replicas = [RedisLedger(redis_server.url, clock=clock, prefix="alerts2") for _ in range(2)]
    end = clock.time() + 60
    try:
        fired = await asyncio.gather(
            *(
                replica.mark_alert(tenant_id="acme", key="day:x", threshold="1", expires_at=end)
                for _ in range(20)
                for replica in replicas
            )
        )
    finally:
        for replica in replicas:
            await replica.close()
    assert fired.count(True) == 1

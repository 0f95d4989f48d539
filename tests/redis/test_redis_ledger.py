"""What only the Redis ledger has: epochs, hash tags, key expiry, the server's clock, failing
closed. (The shared ledger contract runs on Redis in tests/core.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fakes.redis_replicas import free_port
from fakes.redis_server import RedisServer
from redis.asyncio import Redis
from redis.crc import key_slot

from aegis.core import Account, LedgerUnavailable, ManualClock, RedisLedger

DAY = Account(key="day:2026-11-26", budget="day", limit_nanos=1000, hard_stop=True, expires_at=2e9)


async def reserve_and_commit(ledger: RedisLedger, hold_id: str, tenant: str = "t") -> None:
    await ledger.reserve(
        tenant_id=tenant, hold_id=hold_id, amount_nanos=300, accounts=[DAY], ttl_s=60
    )
    await ledger.commit(tenant_id=tenant, hold_id=hold_id, amount_nanos=200)


async def test_flushed_data_fails_closed_instead_of_reading_zero(redis_server: RedisServer) -> None:
    ledger = RedisLedger(redis_server.url)
    await reserve_and_commit(ledger, "a")
    assert redis_server.command("FLUSHALL").startswith(b"+OK")
    with pytest.raises(LedgerUnavailable, match="lost its data"):
        await ledger.balances(tenant_id="t", keys=[DAY.key])
    with pytest.raises(LedgerUnavailable, match="lost its data"):
        await ledger.reserve(tenant_id="t", hold_id="b", amount_nanos=1, accounts=[DAY], ttl_s=60)
    with pytest.raises(LedgerUnavailable):
        await ledger.reserve(tenant_id="new", hold_id="c", amount_nanos=1, accounts=[DAY], ttl_s=60)
    await ledger.close()


async def test_the_epoch_file_remembers_the_loss_across_restarts(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    epoch_file = tmp_path / "epoch"
    first = RedisLedger(redis_server.url, epoch_file=epoch_file)
    await reserve_and_commit(first, "a")
    await first.close()
    redis_server.stop()
    redis_server.start()  # no persistence: everything is gone
    second = RedisLedger(redis_server.url, epoch_file=epoch_file)
    with pytest.raises(LedgerUnavailable, match="lost its data"):
        await second.balances(tenant_id="t", keys=[DAY.key])
    # A newcomer without a record may start an epoch; the replica that remembers still refuses.
    newcomer = RedisLedger(redis_server.url)
    await newcomer.balances(tenant_id="t", keys=[DAY.key])
    with pytest.raises(LedgerUnavailable, match="lost its data"):
        await second.balances(tenant_id="t", keys=[DAY.key])
    for ledger in (second, newcomer):
        await ledger.close()


async def test_accepting_the_loss_lets_every_replica_serve_again(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    a = RedisLedger(redis_server.url, epoch_file=tmp_path / "a")
    b = RedisLedger(redis_server.url, epoch_file=tmp_path / "b")
    await reserve_and_commit(a, "1")
    await reserve_and_commit(b, "2", tenant="u")
    old = (tmp_path / "a").read_text()
    assert (tmp_path / "b").read_text() == old
    redis_server.command("FLUSHALL")
    for ledger in (a, b):
        with pytest.raises(LedgerUnavailable):
            await ledger.balances(tenant_id="t", keys=[DAY.key])
    operator = RedisLedger(redis_server.url, epoch_file=tmp_path / "a", create_epoch=False)
    new = await operator.accept_data_loss()
    await operator.close()
    assert new != old.strip()
    for ledger, tenant in ((a, "t"), (b, "u")):
        balance = (await ledger.balances(tenant_id=tenant, keys=[DAY.key]))[DAY.key]
        assert (balance.committed_nanos, balance.pending_nanos) == (0, 0)
        await reserve_and_commit(ledger, "after", tenant)
    assert (tmp_path / "b").read_text().strip() == new
    for ledger in (a, b):
        await ledger.close()


async def test_a_read_only_tool_never_starts_an_epoch(redis_server: RedisServer) -> None:
    tool = RedisLedger(redis_server.url, create_epoch=False)
    with pytest.raises(LedgerUnavailable):
        await tool.statement(tenant_id="t")
    await tool.close()


async def test_every_key_of_a_tenant_sits_in_one_cluster_slot(redis_server: RedisServer) -> None:
    ledger = RedisLedger(redis_server.url, prefix="slots")
    tenants = ["acme", "we{i}rd%7B", "we%7Bi%7Drd%257B"]
    for tenant in tenants:
        await reserve_and_commit(ledger, "a", tenant)
        await ledger.reserve(
            tenant_id=tenant, hold_id="b", amount_nanos=1, accounts=[DAY], ttl_s=60
        )
    client = Redis.from_url(redis_server.url, decode_responses=True)
    keys = [k async for k in client.scan_iter("slots:*") if k != "slots:epoch"]
    tags = {k[k.index("{") + 1 : k.index("}")] for k in keys}
    assert len(tags) == len(tenants)  # the escaping keeps distinct tenants distinct
    for tag in tags:
        mine = [k for k in keys if k.startswith(f"slots:{{{tag}}}:")]
        assert len(mine) == 2  # the book and the timers
        assert len({key_slot(k.encode()) for k in mine}) == 1
        # Every key expires by itself once its windows and holds are over.
        ttls = [await client.pttl(k) for k in mine]
        assert all(ttl > 0 for ttl in ttls), ttls
    await client.aclose()
    await ledger.close()


async def test_an_unreachable_redis_fails_closed() -> None:
    ledger = RedisLedger(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    with pytest.raises(LedgerUnavailable):
        await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=1, accounts=[DAY], ttl_s=60)
    await ledger.close()


async def test_without_a_clock_holds_expire_by_the_servers_time(redis_server: RedisServer) -> None:
    ledger = RedisLedger(redis_server.url)
    hold = await ledger.reserve(
        tenant_id="t", hold_id="a", amount_nanos=1000, accounts=[DAY], ttl_s=0.2
    )
    assert abs(hold.expires_at - time.time()) < 60  # the server's clock, not a fake one
    deadline = time.monotonic() + 30
    while (await ledger.balances(tenant_id="t", keys=[DAY.key]))[DAY.key].pending_nanos:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await ledger.reserve(tenant_id="t", hold_id="b", amount_nanos=1000, accounts=[DAY], ttl_s=60)
    await ledger.close()


async def test_a_window_is_forgotten_after_it_ends(
    redis_server: RedisServer, clock: ManualClock
) -> None:
    ledger = RedisLedger(redis_server.url, clock=clock)
    minute = Account(
        key="minute:x",
        budget="minute",
        limit_nanos=10,
        hard_stop=True,
        expires_at=clock.time() + 60,
    )
    await ledger.reserve(tenant_id="t", hold_id="a", amount_nanos=10, accounts=[minute], ttl_s=30)
    await ledger.commit(tenant_id="t", hold_id="a", amount_nanos=10)
    assert set((await ledger.statement(tenant_id="t")).balances) == {"minute:x"}
    clock.advance(61)
    assert (await ledger.statement(tenant_id="t")).balances == {}
    await ledger.close()


async def test_amounts_beyond_exact_double_range_fail_closed(redis_server: RedisServer) -> None:
    ledger = RedisLedger(redis_server.url)
    huge = Account(key="day:x", budget="day", limit_nanos=2**62, hard_stop=True, expires_at=2e9)
    with pytest.raises(LedgerUnavailable, match="2\\^53"):
        await ledger.reserve(
            tenant_id="t", hold_id="a", amount_nanos=2**53, accounts=[huge], ttl_s=60
        )
    assert (await ledger.statement(tenant_id="t")).holds == ()
    await ledger.close()

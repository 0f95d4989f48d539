from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fakes.redis_server import RedisServer

from aegis.core import Ledger, ManualClock, MemoryLedger, RedisLedger, SqliteLedger

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session; each ledger gets its own key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", "sqlite-normal", "redis"])
async def ledger(
    request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Ledger]:
    """Each ledger implementation, on the test's manual clock."""
    impl: Ledger
    if request.param == "memory":
        impl = MemoryLedger(clock=clock)
    elif request.param == "sqlite":  # on its worker thread, with group commit
        impl = SqliteLedger(tmp_path / "ledger.db", clock=clock)
    elif request.param == "sqlite-normal":  # inline on the event loop
        impl = SqliteLedger(tmp_path / "ledger.db", clock=clock, synchronous="normal")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        impl = RedisLedger(server.url, clock=clock, prefix=f"test{next(_prefixes)}")
    yield impl
    await impl.close()

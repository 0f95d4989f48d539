"""A real redis-server per test, and real ``aegis-proxy`` replicas sharing it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.redis_replicas import PROXY, Replica, StartReplicas, free_port, wait_ready, write_config
from fakes.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for each test (these tests stop, flush and restart it)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def start_replicas(
    tmp_path: Path, redis_server: RedisServer, openai_upstream: FakeUpstream
) -> AsyncIterator[StartReplicas]:
    """Start ``n`` replicas sharing the test's Redis (or ``redis``); ``tenant`` is TOML for
    tenant acme."""
    started: list[Replica] = []
    env = {
        **os.environ,
        "FAKE_KEY": "sk-upstream",
        "AEGIS_RECEIPT_SECRET": "r" * 32,
        "AEGIS_WEBHOOK_SECRET": "w" * 32,
    }

    async def start(n: int, tenant: str, redis: RedisServer | None = None) -> list[Replica]:
        batch = []
        for _ in range(n):
            home = tmp_path / f"replica{len(started)}"
            home.mkdir()
            port = free_port()
            write_config(home, port, (redis or redis_server).url, openai_upstream, tenant)
            log = home / "proxy.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [*PROXY, "serve", "--config", str(home / "aegis.toml")],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            replica = Replica(home, process, port)
            started.append(replica)
            batch.append(replica)
        for replica in batch:
            await wait_ready(replica, replica.home / "proxy.log")
        return batch

    yield start
    for replica in started:
        replica.stop()

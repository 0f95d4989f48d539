"""The control-plane stores under test: a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fakes.postgres_server import PostgresServer

from aegis.core import ControlStore, PostgresControlStore, SqliteControlStore


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (each test gets its own database)."""
    server = PostgresServer()
    server.start()
    yield server
    server.close()


_databases = iter(range(1, 10**6))


async def fresh_database(server: PostgresServer) -> str:
    """A new empty database on ``server``; returns its DSN."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"t{next(_databases)}"
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ControlStore]:
    """Each contract test runs once per store."""
    made: ControlStore
    if request.param == "sqlite":
        made = SqliteControlStore(tmp_path / "control.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        made = PostgresControlStore(await fresh_database(server))
    await made.open()
    yield made
    await made.close()

"""The control-plane stores under test: a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.postgres_server import PostgresServer, fresh_database
from fakes.proxy_harness import make_settings

from aegis.core import ControlStore, PostgresControlStore, SqliteControlStore, hash_key
from aegis.proxy import AdminSettings, Settings

ADMIN_KEY = "aegis-sk-test-admin-key-0123456789"


@pytest.fixture
def admin_key() -> str:
    return ADMIN_KEY


def control_settings(
    tmp_path: Path, upstream: FakeUpstream, *, receipts: str = "memory", **acme: Any
) -> Settings:
    """The proxy harness's settings (file tenants acme and beta; the SQLite store beside the
    ledger) plus an admin key."""
    settings = make_settings(tmp_path, upstream, receipts=receipts, **acme)
    return dataclasses.replace(settings, admin=AdminSettings(api_keys=(hash_key(ADMIN_KEY),)))


@pytest.fixture
def settings_for() -> Any:
    return control_settings


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ControlStore]:
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

"""The control-plane store for many replicas: tenants and keys in PostgreSQL (``asyncpg``, the
``postgres`` extra, imported only when this store is opened).

Each write is one transaction whose version check is part of the ``UPDATE`` itself (``WHERE
version = $n``), so two replicas editing one policy can never both win. Every write appends to
``aegis_changes`` (a ``BIGSERIAL`` sequence) and sends ``NOTIFY aegis_control``; replicas poll
the sequence (the notification only wakes them early), so a lost notification delays a change
by at most one poll interval.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aegis.core.control import (
    KEY_COLUMNS,
    Change,
    KeyRecord,
    TenantRecord,
    key_from_row,
    key_row,
    policy_to_json,
    scope_to_json,
    tenant_from_row,
)
from aegis.core.errors import (
    AlreadyInStore,
    NotInStore,
    StoreError,
    StoreUnavailable,
    VersionConflict,
)
from aegis.core.policy import Policy

__all__ = ["PostgresControlStore"]

T = TypeVar("T")
CHANNEL: Final = "aegis_control"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS aegis_tenants (
    tenant_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS aegis_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES aegis_tenants (tenant_id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION,
    rotated_from TEXT,
    scope TEXT,
    version BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS aegis_keys_tenant ON aegis_keys (tenant_id, created_at);
CREATE TABLE IF NOT EXISTS aegis_changes (
    seq BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    key_hash TEXT,
    at DOUBLE PRECISION NOT NULL
);
"""
_KEY_SELECT: Final = "SELECT " + ", ".join(KEY_COLUMNS) + " FROM aegis_keys"
_TENANT_SELECT: Final = (
    "SELECT tenant_id, policy, version, created_at, updated_at FROM aegis_tenants"
)
_CHANGES_KEPT_S: Final = 86_400.0


def _asyncpg() -> Any:
    try:
        return importlib.import_module("asyncpg")
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StoreUnavailable(
            "the PostgreSQL store needs asyncpg: install the postgres extra of aegis-runtime-core"
        ) from exc


class PostgresControlStore:
    """:class:`~aegis.core.ControlStore` in PostgreSQL; ``dsn`` is a ``postgresql://`` URL."""

    def __init__(
        self, dsn: str, *, min_size: int = 1, max_size: int = 4, timeout_s: float = 5.0
    ) -> None:
        self._dsn = dsn
        self._min_size = min_size
        self._max_size = max_size
        self._timeout_s = timeout_s
        self._pool: Any = None

    async def _acquire_pool(self) -> Any:
        if self._pool is None:
            asyncpg = _asyncpg()
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout_s,
                command_timeout=self._timeout_s,
            )
        return self._pool

    async def _run(self, fn: Callable[[Any], Awaitable[T]], *, write: bool = False) -> T:
        try:
            pool = await self._acquire_pool()
            async with pool.acquire() as conn:
                if not write:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except StoreError:
            raise
        except Exception as exc:
            # Connection refused, timeouts, server errors: never wave anything through. The
            # DSN (which may hold a password) is not part of the message.
            raise StoreUnavailable(f"control store failed: {type(exc).__name__}") from exc

    @staticmethod
    async def _changed(conn: Any, kind: str, tenant_id: str, key_hash: str | None = None) -> None:
        # Sequence numbers are handed out in insert order, not commit order: with writers
        # serialized here until they commit, a reader that saw seq N can never later find a
        # change below N appear.
        await conn.execute("SELECT pg_advisory_xact_lock(7243202)")
        await conn.execute(
            "INSERT INTO aegis_changes (kind, tenant_id, key_hash, at) VALUES ($1, $2, $3, $4)",
            kind,
            tenant_id,
            key_hash,
            time.time(),
        )
        await conn.execute(f"NOTIFY {CHANNEL}")

    async def open(self) -> None:
        async def setup(conn: Any) -> None:
            # Concurrent first starts of several replicas: serialize the DDL.
            await conn.execute("SELECT pg_advisory_xact_lock(7243201)")
            await conn.execute(_SCHEMA)
            await conn.execute(
                "DELETE FROM aegis_changes WHERE at < $1", time.time() - _CHANGES_KEPT_S
            )

        await self._run(setup, write=True)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def listen(self, callback: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call ``callback`` on every change notification; returns an async ``stop``."""
        asyncpg = _asyncpg()
        conn = await asyncpg.connect(self._dsn, timeout=self._timeout_s)

        def on_notify(*_args: Any) -> None:
            callback()

        await conn.add_listener(CHANNEL, on_notify)

        async def stop() -> None:
            try:
                await conn.remove_listener(CHANNEL, on_notify)
            finally:
                await conn.close()

        return stop

    # -- tenants ---------------------------------------------------------------------------

    async def create_tenant(self, policy: Policy) -> TenantRecord:
        now = time.time()
        body = policy_to_json(policy)

        async def write(conn: Any) -> TenantRecord:
            done = await conn.fetchval(
                "INSERT INTO aegis_tenants VALUES ($1, $2, 1, $3, $3) "
                "ON CONFLICT (tenant_id) DO NOTHING RETURNING 1",
                policy.tenant_id,
                body,
                now,
            )
            if done is None:
                raise AlreadyInStore("tenant", policy.tenant_id)
            await self._changed(conn, "tenant", policy.tenant_id)
            return TenantRecord(policy=policy, version=1, created_at=now, updated_at=now)

        return await self._run(write, write=True)

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        async def read(conn: Any) -> Any:
            return await conn.fetchrow(_TENANT_SELECT + " WHERE tenant_id = $1", tenant_id)

        row = await self._run(read)
        return None if row is None else tenant_from_row(tuple(row))

    async def list_tenants(self, *, limit: int, offset: int = 0) -> list[TenantRecord]:
        async def read(conn: Any) -> list[Any]:
            return list(
                await conn.fetch(
                    _TENANT_SELECT + " ORDER BY tenant_id LIMIT $1 OFFSET $2", limit, offset
                )
            )

        return [tenant_from_row(tuple(r)) for r in await self._run(read)]

    async def count_tenants(self) -> int:
        async def read(conn: Any) -> int:
            return int(await conn.fetchval("SELECT count(*) FROM aegis_tenants"))

        return await self._run(read)

    @staticmethod
    async def _conflict(
        conn: Any, table: str, column: str, kind: str, id_: str, expected: int
    ) -> StoreError:
        current = await conn.fetchval(f"SELECT version FROM {table} WHERE {column} = $1", id_)
        if current is None:
            return NotInStore(kind, id_)
        return VersionConflict(kind, id_, expected=expected, current=int(current))

    async def update_tenant(self, policy: Policy, *, expected_version: int) -> TenantRecord:
        now = time.time()
        body = policy_to_json(policy)
        tenant_id = policy.tenant_id

        async def write(conn: Any) -> TenantRecord:
            created = await conn.fetchval(
                "UPDATE aegis_tenants SET policy = $1, version = version + 1, updated_at = $2 "
                "WHERE tenant_id = $3 AND version = $4 RETURNING created_at",
                body,
                now,
                tenant_id,
                expected_version,
            )
            if created is None:
                raise await self._conflict(
                    conn, "aegis_tenants", "tenant_id", "tenant", tenant_id, expected_version
                )
            await self._changed(conn, "tenant", tenant_id)
            return TenantRecord(
                policy=policy, version=expected_version + 1, created_at=created, updated_at=now
            )

        return await self._run(write, write=True)

    async def delete_tenant(self, tenant_id: str, *, expected_version: int) -> None:
        async def write(conn: Any) -> None:
            hashes = await conn.fetch(
                "SELECT key_hash FROM aegis_keys WHERE tenant_id = $1", tenant_id
            )
            done = await conn.fetchval(
                "DELETE FROM aegis_tenants WHERE tenant_id = $1 AND version = $2 RETURNING 1",
                tenant_id,
                expected_version,
            )
            if done is None:
                raise await self._conflict(
                    conn, "aegis_tenants", "tenant_id", "tenant", tenant_id, expected_version
                )
            await self._changed(conn, "tenant", tenant_id)
            for row in hashes:
                await self._changed(conn, "key", tenant_id, row[0])

        await self._run(write, write=True)

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    async def _insert_key(conn: Any, key: KeyRecord) -> None:
        if (
            await conn.fetchval("SELECT 1 FROM aegis_tenants WHERE tenant_id = $1", key.tenant_id)
            is None
        ):
            raise NotInStore("tenant", key.tenant_id)
        placeholders = ", ".join(f"${i + 1}" for i in range(len(KEY_COLUMNS)))
        done = await conn.fetchval(
            f"INSERT INTO aegis_keys ({', '.join(KEY_COLUMNS)}) VALUES ({placeholders}) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            *key_row(key),
        )
        if done is None:
            raise AlreadyInStore("key", key.key_id)

    async def create_key(self, key: KeyRecord) -> KeyRecord:
        key = key.with_changes(version=1)

        async def write(conn: Any) -> KeyRecord:
            await self._insert_key(conn, key)
            await self._changed(conn, "key", key.tenant_id, key.key_hash)
            return key

        return await self._run(write, write=True)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        async def read(conn: Any) -> Any:
            return await conn.fetchrow(_KEY_SELECT + " WHERE key_id = $1", key_id)

        row = await self._run(read)
        return None if row is None else key_from_row(tuple(row))

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        async def read(conn: Any) -> Any:
            return await conn.fetchrow(_KEY_SELECT + " WHERE key_hash = $1", key_hash)

        row = await self._run(read)
        return None if row is None else key_from_row(tuple(row))

    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        async def read(conn: Any) -> list[Any]:
            return list(
                await conn.fetch(
                    _KEY_SELECT + " WHERE tenant_id = $1 ORDER BY created_at, key_id", tenant_id
                )
            )

        return [key_from_row(tuple(r)) for r in await self._run(read)]

    async def _update_key(self, conn: Any, key: KeyRecord, expected: int) -> KeyRecord:
        key_hash = await conn.fetchval(
            "UPDATE aegis_keys SET name = $1, expires_at = $2, revoked_at = $3, scope = $4, "
            "version = version + 1 WHERE key_id = $5 AND tenant_id = $6 AND version = $7 "
            "RETURNING key_hash",
            key.name,
            key.expires_at,
            key.revoked_at,
            scope_to_json(key.scope),
            key.key_id,
            key.tenant_id,
            expected,
        )
        if key_hash is None:
            owner = await conn.fetchval(
                "SELECT tenant_id FROM aegis_keys WHERE key_id = $1", key.key_id
            )
            if owner != key.tenant_id:
                raise NotInStore("key", key.key_id)
            raise await self._conflict(conn, "aegis_keys", "key_id", "key", key.key_id, expected)
        await self._changed(conn, "key", key.tenant_id, key_hash)
        return key.with_changes(version=expected + 1, key_hash=key_hash)

    async def update_key(self, key: KeyRecord, *, expected_version: int) -> KeyRecord:
        return await self._run(
            lambda conn: self._update_key(conn, key, expected_version), write=True
        )

    async def rotate_key(
        self, old: KeyRecord, new: KeyRecord, *, grace_until: float, expected_version: int
    ) -> tuple[KeyRecord, KeyRecord]:
        new = new.with_changes(version=1, rotated_from=old.key_id, tenant_id=old.tenant_id)
        revoked = grace_until if old.revoked_at is None else min(old.revoked_at, grace_until)

        async def write(conn: Any) -> tuple[KeyRecord, KeyRecord]:
            stored = await self._update_key(
                conn, old.with_changes(revoked_at=revoked), expected_version
            )
            await self._insert_key(conn, new)
            await self._changed(conn, "key", new.tenant_id, new.key_hash)
            return stored, new

        return await self._run(write, write=True)

    # -- change sequence -------------------------------------------------------------------

    async def changes_since(self, seq: int, *, limit: int = 1000) -> list[Change]:
        async def read(conn: Any) -> list[Any]:
            return list(
                await conn.fetch(
                    "SELECT seq, kind, tenant_id, key_hash FROM aegis_changes WHERE seq > $1 "
                    "ORDER BY seq LIMIT $2",
                    seq,
                    limit,
                )
            )

        return [Change(int(r[0]), r[1], r[2], r[3]) for r in await self._run(read)]

    async def head(self) -> int:
        async def read(conn: Any) -> int:
            row = await conn.fetchrow("SELECT last_value, is_called FROM aegis_changes_seq_seq")
            return int(row[0]) if row[1] else 0

        return await self._run(read)

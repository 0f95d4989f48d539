"""The embedded control-plane store: tenants and keys in one SQLite file (WAL, ``synchronous =
FULL``), shared safely by the processes of one machine.

Writes run in ``BEGIN IMMEDIATE`` transactions (a read-check-write could not upgrade a
deferred transaction's lock under WAL) on a worker thread, so the event loop never waits on an
fsync; reads are single statements. Every write appends to ``aegis_changes``, the change
sequence replicas poll.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
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

__all__ = ["SqliteControlStore"]

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS aegis_tenants (
    tenant_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aegis_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    name TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL,
    rotated_from TEXT,
    scope TEXT,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aegis_keys_tenant ON aegis_keys (tenant_id, created_at);
CREATE TABLE IF NOT EXISTS aegis_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    key_hash TEXT,
    at REAL NOT NULL
);
"""
_KEY_SELECT: Final = "SELECT " + ", ".join(KEY_COLUMNS) + " FROM aegis_keys"
_TENANT_SELECT: Final = (
    "SELECT tenant_id, policy, version, created_at, updated_at FROM aegis_tenants"
)
_CHANGES_KEPT_S: Final = 86_400.0
"""Changes older than this are pruned (a replica that slept longer reloads everything)."""


class SqliteControlStore:
    """:class:`~aegis.core.ControlStore` in a SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout_s,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            with self._lock:
                return fn(self._connect())

        try:
            return await asyncio.to_thread(work)
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"control store failed: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"control store failed: {type(exc).__name__}") from exc

    @staticmethod
    def _write(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    @staticmethod
    def _changed(
        conn: sqlite3.Connection, kind: str, tenant_id: str, key_hash: str | None = None
    ) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO aegis_changes (kind, tenant_id, key_hash, at) VALUES (?, ?, ?, ?)",
            (kind, tenant_id, key_hash, now),
        )

    async def open(self) -> None:
        def prune(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM aegis_changes WHERE at < ?", (time.time() - _CHANGES_KEPT_S,))

        await self._run(prune)

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(shut)

    # -- tenants ---------------------------------------------------------------------------

    async def create_tenant(self, policy: Policy) -> TenantRecord:
        now = time.time()
        body = policy_to_json(policy)

        def write(conn: sqlite3.Connection) -> TenantRecord:
            try:
                conn.execute(
                    "INSERT INTO aegis_tenants VALUES (?, ?, 1, ?, ?)",
                    (policy.tenant_id, body, now, now),
                )
            except sqlite3.IntegrityError:
                raise AlreadyInStore("tenant", policy.tenant_id) from None
            self._changed(conn, "tenant", policy.tenant_id)
            return TenantRecord(policy=policy, version=1, created_at=now, updated_at=now)

        return await self._run(lambda c: self._write(c, write))

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        def read(conn: sqlite3.Connection) -> Any:
            return conn.execute(_TENANT_SELECT + " WHERE tenant_id = ?", (tenant_id,)).fetchone()

        row = await self._run(read)
        return None if row is None else tenant_from_row(row)

    async def list_tenants(self, *, limit: int, offset: int = 0) -> list[TenantRecord]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                _TENANT_SELECT + " ORDER BY tenant_id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()

        return [tenant_from_row(r) for r in await self._run(read)]

    async def count_tenants(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT count(*) FROM aegis_tenants").fetchone()[0])

        return await self._run(read)

    @staticmethod
    def _tenant_version(conn: sqlite3.Connection, tenant_id: str, expected: int) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT version, created_at FROM aegis_tenants WHERE tenant_id = ?", (tenant_id,)
        ).fetchone()
        if row is None:
            raise NotInStore("tenant", tenant_id)
        if int(row[0]) != expected:
            raise VersionConflict("tenant", tenant_id, expected=expected, current=int(row[0]))
        return tuple(row)

    async def update_tenant(self, policy: Policy, *, expected_version: int) -> TenantRecord:
        now = time.time()
        body = policy_to_json(policy)
        tenant_id = policy.tenant_id

        def write(conn: sqlite3.Connection) -> TenantRecord:
            _version, created = self._tenant_version(conn, tenant_id, expected_version)
            conn.execute(
                "UPDATE aegis_tenants SET policy = ?, version = version + 1, updated_at = ? "
                "WHERE tenant_id = ?",
                (body, now, tenant_id),
            )
            self._changed(conn, "tenant", tenant_id)
            return TenantRecord(
                policy=policy,
                version=expected_version + 1,
                created_at=float(created),
                updated_at=now,
            )

        return await self._run(lambda c: self._write(c, write))

    async def delete_tenant(self, tenant_id: str, *, expected_version: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            self._tenant_version(conn, tenant_id, expected_version)
            hashes = conn.execute(
                "SELECT key_hash FROM aegis_keys WHERE tenant_id = ?", (tenant_id,)
            ).fetchall()
            conn.execute("DELETE FROM aegis_keys WHERE tenant_id = ?", (tenant_id,))
            conn.execute("DELETE FROM aegis_tenants WHERE tenant_id = ?", (tenant_id,))
            self._changed(conn, "tenant", tenant_id)
            for (key_hash,) in hashes:
                self._changed(conn, "key", tenant_id, key_hash)

        await self._run(lambda c: self._write(c, write))

    # -- keys ------------------------------------------------------------------------------

    @staticmethod
    def _insert_key(conn: sqlite3.Connection, key: KeyRecord) -> None:
        if (
            conn.execute(
                "SELECT 1 FROM aegis_tenants WHERE tenant_id = ?", (key.tenant_id,)
            ).fetchone()
            is None
        ):
            raise NotInStore("tenant", key.tenant_id)
        try:
            conn.execute(
                f"INSERT INTO aegis_keys ({', '.join(KEY_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in KEY_COLUMNS)})",
                key_row(key),
            )
        except sqlite3.IntegrityError:
            raise AlreadyInStore("key", key.key_id) from None

    async def create_key(self, key: KeyRecord) -> KeyRecord:
        key = key.with_changes(version=1)

        def write(conn: sqlite3.Connection) -> KeyRecord:
            self._insert_key(conn, key)
            self._changed(conn, "key", key.tenant_id, key.key_hash)
            return key

        return await self._run(lambda c: self._write(c, write))

    async def get_key(self, key_id: str) -> KeyRecord | None:
        def read(conn: sqlite3.Connection) -> Any:
            return conn.execute(_KEY_SELECT + " WHERE key_id = ?", (key_id,)).fetchone()

        row = await self._run(read)
        return None if row is None else key_from_row(row)

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        def read(conn: sqlite3.Connection) -> Any:
            return conn.execute(_KEY_SELECT + " WHERE key_hash = ?", (key_hash,)).fetchone()

        row = await self._run(read)
        return None if row is None else key_from_row(row)

    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                _KEY_SELECT + " WHERE tenant_id = ? ORDER BY created_at, key_id", (tenant_id,)
            ).fetchall()

        return [key_from_row(r) for r in await self._run(read)]

    @staticmethod
    def _update_key(conn: sqlite3.Connection, key: KeyRecord, expected: int) -> KeyRecord:
        row = conn.execute(
            "SELECT version, tenant_id, key_hash FROM aegis_keys WHERE key_id = ?", (key.key_id,)
        ).fetchone()
        if row is None or row[1] != key.tenant_id:
            raise NotInStore("key", key.key_id)
        if int(row[0]) != expected:
            raise VersionConflict("key", key.key_id, expected=expected, current=int(row[0]))
        conn.execute(
            "UPDATE aegis_keys SET name = ?, expires_at = ?, revoked_at = ?, scope = ?, "
            "version = version + 1 WHERE key_id = ?",
            (key.name, key.expires_at, key.revoked_at, scope_to_json(key.scope), key.key_id),
        )
        SqliteControlStore._changed(conn, "key", key.tenant_id, row[2])
        return key.with_changes(version=expected + 1, key_hash=row[2])

    async def update_key(self, key: KeyRecord, *, expected_version: int) -> KeyRecord:
        return await self._run(
            lambda c: self._write(c, lambda conn: self._update_key(conn, key, expected_version))
        )

    async def rotate_key(
        self, old: KeyRecord, new: KeyRecord, *, grace_until: float, expected_version: int
    ) -> tuple[KeyRecord, KeyRecord]:
        new = new.with_changes(version=1, rotated_from=old.key_id, tenant_id=old.tenant_id)
        revoked = grace_until if old.revoked_at is None else min(old.revoked_at, grace_until)

        def write(conn: sqlite3.Connection) -> tuple[KeyRecord, KeyRecord]:
            stored = self._update_key(conn, old.with_changes(revoked_at=revoked), expected_version)
            self._insert_key(conn, new)
            self._changed(conn, "key", new.tenant_id, new.key_hash)
            return stored, new

        return await self._run(lambda c: self._write(c, write))

    # -- change sequence -------------------------------------------------------------------

    async def changes_since(self, seq: int, *, limit: int = 1000) -> list[Change]:
        def read(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "SELECT seq, kind, tenant_id, key_hash FROM aegis_changes WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()

        return [Change(int(r[0]), r[1], r[2], r[3]) for r in await self._run(read)]

    async def head(self) -> int:
        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT max(seq) FROM aegis_changes").fetchone()
            if row[0] is not None:
                return int(row[0])
            # Pruned to nothing: AUTOINCREMENT still remembers the last seq handed out.
            seq = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'aegis_changes'"
            ).fetchone()
            return 0 if seq is None else int(seq[0])

        return await self._run(read)

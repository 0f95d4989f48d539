"""The embedded default ledger: SQLite in WAL mode, shared safely by processes on one machine.

Operations run in ``BEGIN IMMEDIATE`` transactions, so the read-check-write of a reservation is
serialized across processes (a deferred transaction could not upgrade to a write lock under
WAL).

Where they run depends on durability. With ``synchronous="full"`` every commit waits for an
fsync, which must not block the event loop: operations go to one worker thread per ledger,
with group commit — the operations waiting when a transaction starts share it, each inside its
own savepoint (a refused reservation rolls back alone), and one fsync makes the whole batch
durable before any caller hears its answer. With ``synchronous="normal"`` a commit is a short
write to the WAL with no fsync, cheaper than handing the work to a thread (and than the GIL
hand-offs that come with it under load), so operations run inline on the event loop — those
queued in the same turn of the loop together, as one transaction.

A hold may carry a note (:class:`~aegis.core.ledger.NotingLedger`): the Gate's admission
record, inserted by the reservation's transaction and deleted by the one that commits or
releases the hold, so recording an admission costs no write of its own.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from aegis.core.clock import Clock, SystemClock
from aegis.core.errors import (
    AegisError,
    DuplicateRequest,
    HoldAlreadyResolved,
    HoldNotFound,
    LedgerUnavailable,
)
from aegis.core.ledger import (
    Account,
    Balance,
    Hold,
    HoldNote,
    Settlement,
    Statement,
    check_admission,
    posted_amount,
)

__all__ = ["SqliteLedger"]

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS aegis_accounts (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    committed INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aegis_holds (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    keys TEXT NOT NULL,
    state TEXT NOT NULL,
    expires_at REAL NOT NULL,
    charged INTEGER NOT NULL DEFAULT 0,
    resolved_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aegis_holds_expiry ON aegis_holds (expires_at)
    WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS aegis_notes (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aegis_alerts (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    threshold TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (tenant, key, threshold)
) WITHOUT ROWID;
"""

# Bounded so a backlog of dead holds never makes one reservation slow.
_SWEEP_BATCH: Final = 256
# Operations sharing one transaction (and one fsync) at most.
_GROUP_MAX: Final = 256


def _parts(keys: str, amount: int) -> list[tuple[str, int, str]]:
    """A hold's accounts as (key, amount held, unit); older rows list bare keys (budgets)."""
    return [
        (k, amount, "nanos") if isinstance(k, str) else (k[0], int(k[1]), k[2])
        for k in json.loads(keys)
    ]


def _drop_note(conn: sqlite3.Connection, tenant_id: str, hold_id: str) -> None:
    conn.execute("DELETE FROM aegis_notes WHERE tenant = ? AND id = ?", (tenant_id, hold_id))


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection, float], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _deliver(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller was cancelled; the operation happened anyway
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class SqliteLedger:
    """Accounts and holds in one SQLite file.

    ``synchronous="full"`` (the default) makes every operation durable against power loss;
    ``"normal"`` is durable against a process crash only and saves an fsync per operation.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        synchronous: Literal["full", "normal"] = "full",
        busy_timeout_ms: int = 10_000,
        retention_s: float = 86_400.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._retention_s = retention_s
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._inline = synchronous == "normal"
        self._tick: list[
            tuple[Callable[[sqlite3.Connection, float], Any], asyncio.Future[Any]]
        ] = []
        self._connection: sqlite3.Connection | None = None
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._closed = False
        self._next_prune = 0.0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._open()) as conn:
            conn.executescript(_SCHEMA)
        self._worker = threading.Thread(target=self._serve, name="aegis-sqlite-ledger", daemon=True)
        if not self._inline:
            self._worker.start()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
        return conn

    def _conn(self) -> sqlite3.Connection:
        # Only the single worker thread gets here, so no lock is needed.
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    async def _run(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        if self._closed:
            raise LedgerUnavailable("ledger is closed")
        loop = asyncio.get_running_loop()
        if self._inline:
            # Operations queued in the same turn of the loop share one transaction.
            future: asyncio.Future[T] = loop.create_future()
            self._tick.append((fn, future))
            if len(self._tick) == 1:
                loop.call_soon(self._flush)
            return await future
        threaded: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(fn, threaded, loop))
        return await threaded

    def _flush(self) -> None:
        """Inline mode: run this turn's operations as one transaction, on the loop."""
        batch = [(fn, f) for fn, f in self._tick if not f.done()]  # skip cancelled callers
        self._tick = []
        if not batch:
            return
        outcomes = self._transaction([fn for fn, _ in batch])
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            _deliver(future, ok, value)

    def _serve(self) -> None:
        """The worker thread: run whatever is waiting as one transaction, until closed."""
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _GROUP_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            outcomes = self._transaction([op.fn for op in batch])
            for op, (ok, value) in zip(batch, outcomes, strict=True):
                with suppress(RuntimeError):  # RuntimeError: the caller's loop is gone
                    op.loop.call_soon_threadsafe(_deliver, op.future, ok, value)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _transaction(
        self, batch: list[Callable[[sqlite3.Connection, float], Any]]
    ) -> list[tuple[bool, Any]]:
        """Run ``batch`` in one transaction; one (succeeded, result or error) per operation."""
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            failure = LedgerUnavailable(f"sqlite ledger {self.path}: {exc}")
            return [(False, failure) for _ in batch]
        results: list[tuple[bool, Any]] = []
        alone = len(batch) == 1  # a lone operation needs no savepoint: the rollback is its own
        try:
            now = self._clock.time()
            self._sweep(conn, now)
            for fn in batch:
                if not alone:
                    conn.execute("SAVEPOINT op")
                try:
                    value = fn(conn, now)
                except AegisError as exc:  # a refusal (budget, duplicate ...), not a failure
                    if alone:
                        conn.execute("ROLLBACK")
                        return [(False, exc)]
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((False, exc))
                else:
                    if not alone:
                        conn.execute("RELEASE op")
                    results.append((True, value))
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Nothing of the batch happened: every caller hears the store failed.
            failure = LedgerUnavailable(f"sqlite ledger {self.path}: {exc}")
            return [(False, failure) for _ in batch]
        return results

    def _sweep(self, conn: sqlite3.Connection, now: float) -> None:
        expired = conn.execute(
            "SELECT tenant, id, amount, keys FROM aegis_holds "
            "WHERE state = 'pending' AND expires_at <= ? LIMIT ?",
            (now, _SWEEP_BATCH),
        ).fetchall()
        for tenant, hold_id, amount, keys in expired:
            conn.executemany(
                "UPDATE aegis_accounts SET pending = pending - ? WHERE tenant = ? AND key = ?",
                [(held, tenant, key) for key, held, _ in _parts(keys, amount)],
            )
            conn.execute(
                "UPDATE aegis_holds SET state = 'expired', resolved_at = ? "
                "WHERE tenant = ? AND id = ?",
                (now, tenant, hold_id),
            )
        if now >= self._next_prune:
            self._next_prune = now + 60.0
            conn.execute("DELETE FROM aegis_accounts WHERE pending = 0 AND expires_at <= ?", (now,))
            conn.execute("DELETE FROM aegis_alerts WHERE expires_at <= ?", (now,))
            conn.execute(
                "DELETE FROM aegis_holds WHERE state != 'pending' AND resolved_at <= ?",
                (now - self._retention_s,),
            )

    async def reserve(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        return await self._reserve(tenant_id, hold_id, amount_nanos, accounts, ttl_s, None)

    async def reserve_noted(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
        note: HoldNote,
    ) -> Hold:
        return await self._reserve(tenant_id, hold_id, amount_nanos, accounts, ttl_s, note)

    async def notes(self, *, owner: str) -> list[str]:
        def op(conn: sqlite3.Connection, now: float) -> list[str]:
            rows = conn.execute("SELECT text FROM aegis_notes WHERE owner = ?", (owner,))
            return [str(text) for (text,) in rows]

        return await self._run(op)

    async def _reserve(
        self,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
        note: HoldNote | None,
    ) -> Hold:
        def op(conn: sqlite3.Connection, now: float) -> Hold:
            row = conn.execute(
                "SELECT state FROM aegis_holds WHERE tenant = ? AND id = ?", (tenant_id, hold_id)
            ).fetchone()
            if row is not None and row[0] in ("pending", "committed"):
                raise DuplicateRequest(hold_id, "in flight" if row[0] == "pending" else "charged")
            spent = []
            for account in accounts:
                got = conn.execute(
                    "SELECT committed + pending FROM aegis_accounts WHERE tenant = ? AND key = ?",
                    (tenant_id, account.key),
                ).fetchone()
                spent.append(0 if got is None else int(got[0]))
            check_admission(tenant_id, amount_nanos, accounts, spent, now)
            amounts = [amount_nanos if a.amount is None else a.amount for a in accounts]
            conn.executemany(
                "INSERT INTO aegis_accounts (tenant, key, pending, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (tenant, key) DO UPDATE SET pending = pending + excluded.pending, "
                "expires_at = max(expires_at, excluded.expires_at)",
                [
                    (tenant_id, a.key, n, a.expires_at)
                    for a, n in zip(accounts, amounts, strict=True)
                ],
            )
            expires_at = now + ttl_s
            conn.execute(
                "INSERT OR REPLACE INTO aegis_holds (tenant, id, amount, keys, state, expires_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                (
                    tenant_id,
                    hold_id,
                    amount_nanos,
                    json.dumps(
                        [[a.key, n, a.unit] for a, n in zip(accounts, amounts, strict=True)]
                    ),
                    expires_at,
                ),
            )
            if note is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO aegis_notes (tenant, id, owner, text) "
                    "VALUES (?, ?, ?, ?)",
                    (tenant_id, hold_id, note.owner, note.text),
                )
            return Hold(tenant_id, hold_id, amount_nanos, expires_at, tuple(spent))

        return await self._run(op)

    @staticmethod
    def _get(
        conn: sqlite3.Connection, tenant_id: str, hold_id: str
    ) -> tuple[int, list[tuple[str, int, str]], str]:
        row = conn.execute(
            "SELECT amount, keys, state FROM aegis_holds WHERE tenant = ? AND id = ?",
            (tenant_id, hold_id),
        ).fetchone()
        if row is None:
            raise HoldNotFound(f"no reservation {hold_id!r} for tenant {tenant_id!r}")
        return int(row[0]), _parts(row[1], int(row[0])), str(row[2])

    async def commit(
        self, *, tenant_id: str, hold_id: str, amount_nanos: int, tokens: int | None = None
    ) -> Settlement:
        def op(conn: sqlite3.Connection, now: float) -> Settlement:
            amount, parts, state = self._get(conn, tenant_id, hold_id)
            if state in ("committed", "released"):
                raise HoldAlreadyResolved(hold_id, state)
            late = state == "expired"
            conn.executemany(
                "INSERT INTO aegis_accounts (tenant, key, committed, pending, expires_at) "
                "VALUES (?, ?, ?, 0, ?) ON CONFLICT (tenant, key) DO UPDATE SET "
                "committed = committed + excluded.committed, pending = pending - ?",
                [
                    (
                        tenant_id,
                        k,
                        posted_amount(unit, held, amount_nanos, tokens),
                        now,
                        0 if late else held,
                    )
                    for k, held, unit in parts
                ],
            )
            conn.execute(
                "UPDATE aegis_holds SET state = 'committed', charged = ?, resolved_at = ? "
                "WHERE tenant = ? AND id = ?",
                (amount_nanos, now, tenant_id, hold_id),
            )
            _drop_note(conn, tenant_id, hold_id)
            return Settlement(hold_id, amount, amount_nanos, late)

        return await self._run(op)

    async def release(self, *, tenant_id: str, hold_id: str) -> None:
        def op(conn: sqlite3.Connection, now: float) -> None:
            _, parts, state = self._get(conn, tenant_id, hold_id)
            if state == "expired":
                _drop_note(conn, tenant_id, hold_id)  # resolved: nothing left to recover
                return
            if state != "pending":
                raise HoldAlreadyResolved(hold_id, state)
            conn.executemany(
                "UPDATE aegis_accounts SET pending = pending - ?, committed = committed + ? "
                "WHERE tenant = ? AND key = ?",
                [
                    (held, posted_amount(unit, held, 0, None, released=True), tenant_id, k)
                    for k, held, unit in parts
                ],
            )
            conn.execute(
                "UPDATE aegis_holds SET state = 'released', resolved_at = ? "
                "WHERE tenant = ? AND id = ?",
                (now, tenant_id, hold_id),
            )
            _drop_note(conn, tenant_id, hold_id)

        await self._run(op)

    async def renew(self, *, tenant_id: str, hold_id: str, ttl_s: float) -> Hold:
        def op(conn: sqlite3.Connection, now: float) -> Hold:
            amount, _, state = self._get(conn, tenant_id, hold_id)
            if state != "pending":
                raise HoldAlreadyResolved(hold_id, state)
            conn.execute(
                "UPDATE aegis_holds SET expires_at = ? WHERE tenant = ? AND id = ?",
                (now + ttl_s, tenant_id, hold_id),
            )
            return Hold(tenant_id, hold_id, amount, now + ttl_s)

        return await self._run(op)

    async def balances(self, *, tenant_id: str, keys: Sequence[str]) -> dict[str, Balance]:
        def op(conn: sqlite3.Connection, now: float) -> dict[str, Balance]:
            result = {}
            for key in keys:
                row = conn.execute(
                    "SELECT committed, pending FROM aegis_accounts WHERE tenant = ? AND key = ?",
                    (tenant_id, key),
                ).fetchone()
                result[key] = Balance() if row is None else Balance(int(row[0]), int(row[1]))
            return result

        return await self._run(op)

    async def statement(self, *, tenant_id: str) -> Statement:
        def op(conn: sqlite3.Connection, now: float) -> Statement:
            balances = {
                str(key): Balance(int(committed), int(pending))
                for key, committed, pending in conn.execute(
                    "SELECT key, committed, pending FROM aegis_accounts WHERE tenant = ? "
                    "ORDER BY key",
                    (tenant_id,),
                )
            }
            holds = tuple(
                Hold(tenant_id, str(hold_id), int(amount), float(expires_at))
                for hold_id, amount, expires_at in conn.execute(
                    "SELECT id, amount, expires_at FROM aegis_holds "
                    "WHERE tenant = ? AND state = 'pending' ORDER BY expires_at",
                    (tenant_id,),
                )
            )
            return Statement(tenant_id, balances, holds)

        return await self._run(op)

    async def mark_alert(
        self, *, tenant_id: str, key: str, threshold: str, expires_at: float
    ) -> bool:
        def op(conn: sqlite3.Connection, now: float) -> bool:
            if expires_at <= now:
                return False
            # Inserts, or takes over a mark whose window is over; else changes nothing.
            cursor = conn.execute(
                "INSERT INTO aegis_alerts (tenant, key, threshold, expires_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (tenant, key, threshold) DO UPDATE SET "
                "expires_at = excluded.expires_at WHERE aegis_alerts.expires_at <= ?",
                (tenant_id, key, threshold, expires_at, now),
            )
            return cursor.rowcount == 1

        return await self._run(op)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._inline:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return
        self._queue.put(None)  # after every operation already queued
        await asyncio.to_thread(self._worker.join)

"""``SqliteReceiptSink``: the receipt trail as rows of one SQLite file.

Table ``aegis_receipts(id, chain_id, seq, line)`` holds each receipt's canonical bytes in
write order (``id``); table ``aegis_receipt_checkpoints(id, line)`` holds the signed
checkpoints. The verifier reads a database trail exactly like a file trail, row by row.
Checkpoints kept in the same file guard against a cut tail only as far as the writer cannot
rewrite the file; export them (``on_checkpoint``) for stronger evidence.

Durability: ``"fsync"`` (default) commits each batch with ``synchronous=FULL``; ``"group"``
commits with ``synchronous=NORMAL`` (safe against a process crash) and fsyncs the WAL at most
``sync_interval_s`` after the first unsynced batch (the loss window on power loss);
``"buffered"`` is ``"group"`` without waiting for the commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aegis.core._writer import BatchWriter, Durability, Item, WriterSink
from aegis.core.checkpoints import Checkpoint
from aegis.core.clock import Clock, SystemClock
from aegis.core.errors import TrailLocked
from aegis.core.files import exclusive_lock
from aegis.core.receipts import Signer

__all__ = ["SqliteReceiptSink"]

RECEIPTS_TABLE: Final = "aegis_receipts"
CHECKPOINTS_TABLE: Final = "aegis_receipt_checkpoints"
_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS {RECEIPTS_TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chain_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line BLOB NOT NULL
);
"""


class SqliteReceiptSink(WriterSink):
    """Receipts as rows of one SQLite database (WAL mode), written by one writer thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Durability = "fsync",
        sync_interval_s: float = 0.05,
        checkpoint_signer: Signer | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float | None = 60.0,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.path = Path(path)
        self._writer = BatchWriter(
            _SqliteBackend(self.path, durability),
            durability=durability,
            sync_interval_s=sync_interval_s,
            checkpoint_signer=checkpoint_signer,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
            clock=clock or SystemClock(),
            on_checkpoint=on_checkpoint,
        )


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # nothing written yet
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _SqliteBackend:
    def __init__(self, path: Path, durability: Durability) -> None:
        self.path = path
        self.name = str(path)
        self._durability = durability
        self._db: sqlite3.Connection | None = None
        self._lock_fd = -1
        self._rows: list[tuple[str, int, bytes]] = []

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def open(self) -> bytes | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One writer per chain: a second process appending to it would fork the chain.
        lock = exclusive_lock(self.path.with_name(self.path.name + ".lock"))
        if lock is None:
            raise TrailLocked(f"receipt trail {self.path} is locked by another writer")
        self._lock_fd = lock
        # Opened on the writer thread and used only there.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        sync = "FULL" if self._durability == "fsync" else "NORMAL"
        self.db.execute(f"PRAGMA synchronous={sync}")
        self.db.executescript(_SCHEMA)
        row = self.db.execute(
            f"SELECT line FROM {RECEIPTS_TABLE} ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else bytes(row[0])

    def last_checkpoint(self) -> Checkpoint | None:
        row = self.db.execute(
            f"SELECT line FROM {CHECKPOINTS_TABLE} ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        try:
            return Checkpoint.from_dict(json.loads(bytes(row[0])))
        except ValueError:
            return None

    def should_rotate(self, day: str, nbytes: int) -> bool:
        return False

    def rotate(self, day: str) -> None:
        return None

    def add(self, item: Item) -> None:
        self._rows.append((item.chain_id, item.seq, item.line))

    def flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                f"INSERT INTO {RECEIPTS_TABLE} (chain_id, seq, line) VALUES (?, ?, ?)", rows
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def sync(self) -> None:
        if self._durability != "fsync":
            # A commit is durable once its frames in the WAL are: fsyncing the WAL file is what
            # synchronous=FULL would do at every commit, done here once per interval instead.
            _fsync_path(Path(f"{self.path}-wal"))

    def append_checkpoint(self, line: bytes) -> None:
        self.db.execute(f"INSERT INTO {CHECKPOINTS_TABLE} (line) VALUES (?)", (line,))
        self.sync()

    def close(self) -> None:
        try:
            if self._db is not None:
                self._db.close()
                self._db = None
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

"""The writer thread behind the durable receipt sinks.

``write`` (on the event loop) only queues the receipt's canonical bytes, in call order, and
awaits a future; one thread drains the queue in batches, appends each batch with one write,
makes it as durable as the sink promises (one fsync per batch, however many receipts it
holds), then resolves the batch's futures. So concurrent Gate calls share fsyncs instead of
queueing behind each other's disk latency, and the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from aegis.core.checkpoints import Checkpoint
from aegis.core.clock import Clock
from aegis.core.errors import ReceiptError, ReceiptSinkUnavailable, TrailLocked
from aegis.core.receipts import GENESIS_HASH, Receipt, Signer

__all__ = ["BatchWriter", "Durability", "TrailBackend"]

logger = logging.getLogger(__name__)

Durability = Literal["fsync", "group", "buffered"]


@dataclass(slots=True)
class Item:
    """One queued receipt."""

    line: bytes
    seq: int
    chain_id: str
    prev_hash: str
    day: str
    future: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop | None


class TrailBackend(Protocol):
    """Storage for one trail; every method runs on the writer thread."""

    name: str

    def open(self) -> bytes | None:
        """Take the trail for writing; return its last complete receipt line, if any."""
        ...

    def last_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint stored, if any."""
        ...

    def should_rotate(self, day: str, nbytes: int) -> bool:
        """Whether a receipt of ``nbytes`` finished on ``day`` must start a new segment."""
        ...

    def rotate(self, day: str) -> None:
        """Start a new segment (everything before it is flushed, synced and checkpointed)."""
        ...

    def add(self, item: Item) -> None:
        """Buffer one receipt."""
        ...

    def flush(self) -> None:
        """Hand the buffered receipts to the OS, in order."""
        ...

    def sync(self) -> None:
        """Make everything flushed durable on disk."""
        ...

    def append_checkpoint(self, line: bytes) -> None:
        """Store one checkpoint line durably."""
        ...

    def close(self) -> None:
        """Release files, locks and connections."""
        ...


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # the awaiting task was cancelled; the receipt is written anyway
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class BatchWriter:
    """Queue, writer thread, durability and checkpoint cadence for one :class:`TrailBackend`."""

    def __init__(
        self,
        backend: TrailBackend,
        *,
        durability: Durability,
        sync_interval_s: float,
        checkpoint_signer: Signer | None,
        checkpoint_every: int,
        checkpoint_interval_s: float | None,
        clock: Clock,
        on_checkpoint: Callable[[Checkpoint], None] | None,
    ) -> None:
        if durability not in ("fsync", "group", "buffered"):
            raise ValueError(f"durability must be fsync, group or buffered, not {durability!r}")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._backend = backend
        self.durability: Durability = durability
        self._sync_interval_s = sync_interval_s
        self._signer = checkpoint_signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_s
        self._clock = clock
        self._on_checkpoint = on_checkpoint
        self._cond = threading.Condition()
        self._queue: list[Item] = []
        self._closing = False
        self._failed: ReceiptSinkUnavailable | None = None
        self._failed_at = 0.0
        self._reopen = False
        self.retry_after_s = 1.0
        """How long a failed trail waits before trying to reopen (see :meth:`check`)."""
        self.opened: concurrent.futures.Future[Receipt | None] = concurrent.futures.Future()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.last_submitted: Receipt | None = None
        self.last_checkpoint: Checkpoint | None = None
        # Writer-thread state: the trail's head and what is durable.
        self._chain_id: str | None = None
        self._head_seq = -1
        self._head_hash = GENESIS_HASH
        self._checkpoint_size = 0
        self._checkpoint_mono = time.monotonic()
        self._dirty_since: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"aegis-receipts:{backend.name}", daemon=True
        )
        self._thread.start()

    # -- event-loop side -----------------------------------------------------------------

    def submit(self, receipt: Receipt) -> asyncio.Future[None] | None:
        """Queue ``receipt`` (its place in order is fixed now); returns the future to await."""
        line = receipt.canonical_line()
        future: asyncio.Future[None] | None = None
        loop: asyncio.AbstractEventLoop | None = None
        if self.durability != "buffered":
            loop = asyncio.get_running_loop()
            future = loop.create_future()
        day = receipt.finished_at[:10].replace("-", "")
        item = Item(line, receipt.seq, receipt.chain_id, receipt.prev_hash, day, future, loop)
        with self._cond:
            # Checked under the lock: the writer fails (and drains the queue) under it too,
            # so no receipt is queued after nobody is left to resolve it.
            failed = self._failed
            if failed is not None:
                raise type(failed)(failed.message) from failed.__cause__
            if self._closing:
                raise ReceiptSinkUnavailable(f"receipt trail {self._backend.name} is closed")
            self._queue.append(item)
            # The writer sleeps only on an empty queue; waking it again per receipt is wasted
            # work on the Gate's hot path.
            if len(self._queue) == 1:
                self._cond.notify()
        self.last_submitted = receipt
        return future

    def check(self) -> None:
        """Raise if the trail has failed or is closed (what ``submit`` would raise).

        A failed trail asks the writer to reopen it once ``retry_after_s`` has passed; the
        call that asked is still refused, later ones succeed when the reopen did.
        """
        failed = self._failed
        if failed is not None:
            if time.monotonic() - self._failed_at >= self.retry_after_s and not self._reopen:
                with self._cond:
                    self._reopen = True
                    self._cond.notify()
            raise type(failed)(failed.message) from failed.__cause__
        if self._closing:
            raise ReceiptSinkUnavailable(f"receipt trail {self._backend.name} is closed")

    def close(self) -> None:
        """Ask the thread to drain, sync, checkpoint and stop (see :attr:`done`)."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    # -- writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            last_line = self._backend.open()
            last_cp = self._backend.last_checkpoint()
            tail = None
            if last_line is not None:
                tail = Receipt.from_dict(json.loads(last_line))
                self._chain_id = tail.chain_id
                self._head_seq = tail.seq
                self._head_hash = hashlib.sha256(last_line).hexdigest()
            if last_cp is not None:
                self._checkpoint_size = last_cp.size
                self.last_checkpoint = last_cp
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, TrailLocked)
                else ReceiptSinkUnavailable(
                    f"receipt trail {self._backend.name} cannot be opened: {_describe(exc)}"
                )
            )
            error.__cause__ = exc if error is not exc else None
            with self._cond:
                self._failed = error
            self.opened.set_exception(error)
            self._drain_failed()
            self._backend_close()
            self.done.set_result(None)
            return
        self.opened.set_result(tail)
        try:
            self._loop()
        finally:
            self._backend_close()
            self.done.set_result(None)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._reopen:
                    timeout = self._next_deadline()
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                batch, self._queue = self._queue, []
                closing = self._closing
                reopen = self._reopen
            if reopen and not closing:
                self._reopen_trail()
            if batch:
                self._write(batch)
            if self._failed is None:
                self._guarded(self._periodic)
            if closing and not batch:
                with self._cond:
                    if self._queue:
                        continue
                if self._failed is None:
                    self._guarded(self._finish)
                return

    def _drain_failed(self) -> None:
        with self._cond:
            batch, self._queue = self._queue, []
        self._resolve(batch, self._failed)

    def _guarded(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        error = ReceiptSinkUnavailable(
            f"receipt trail {self._backend.name} cannot be written: {_describe(exc)}"
        )
        error.__cause__ = exc
        with self._cond:
            self._failed = error
            self._failed_at = time.monotonic()
            self._dirty_since = None
        logger.error("receipt trail %s failed: %s", self._backend.name, _describe(exc))
        self._drain_failed()

    def _reopen_trail(self) -> None:
        """Reopen a failed trail at its durable head (the last complete receipt on disk)."""
        self._backend_close()
        try:
            last_line = self._backend.open()
            last_cp = self._backend.last_checkpoint()
            tail = None if last_line is None else Receipt.from_dict(json.loads(last_line))
        except Exception as exc:
            with self._cond:
                self._reopen = False
                self._failed_at = time.monotonic()
            logger.error("receipt trail %s still failing: %s", self._backend.name, _describe(exc))
            return
        opened: concurrent.futures.Future[Receipt | None] = concurrent.futures.Future()
        opened.set_result(tail)
        with self._cond:
            self._head_seq = -1 if tail is None else tail.seq
            self._chain_id = None if tail is None else tail.chain_id
            self._head_hash = (
                GENESIS_HASH if last_line is None else hashlib.sha256(last_line).hexdigest()
            )
            if last_cp is not None:
                self._checkpoint_size = last_cp.size
                self.last_checkpoint = last_cp
            self.last_submitted = None
            self.opened = opened
            self._failed = None
            self._reopen = False
        logger.warning("receipt trail %s reopened at seq %s", self._backend.name, self._head_seq)

    def _next_deadline(self) -> float | None:
        if self._failed is not None:
            return None  # nothing to sync or checkpoint until the trail is reopened
        now = time.monotonic()
        deadlines = []
        if self._dirty_since is not None and self.durability == "group":
            deadlines.append(self._dirty_since + self._sync_interval_s - now)
        if (
            self._checkpoint_interval_s is not None
            and self._signer is not None
            and self._head_seq + 1 > self._checkpoint_size
        ):
            deadlines.append(self._checkpoint_mono + self._checkpoint_interval_s - now)
        return min(deadlines) if deadlines else None

    def _write(self, batch: list[Item]) -> None:
        if self._failed is not None:
            self._resolve(batch, self._failed)
            return
        backend = self._backend
        accepted: list[Item] = []
        rejected: list[tuple[Item, ReceiptError]] = []
        try:
            for item in batch:
                problem = self._continuity(item)
                if problem is not None:
                    rejected.append((item, ReceiptError(problem)))
                    continue
                if backend.should_rotate(item.day, len(item.line) + 1):
                    backend.flush()
                    backend.sync()
                    self._dirty_since = None
                    self._checkpoint()
                    backend.rotate(item.day)
                backend.add(item)
                self._chain_id = item.chain_id
                self._head_seq = item.seq
                self._head_hash = hashlib.sha256(item.line).hexdigest()
                accepted.append(item)
            backend.flush()
            if self.durability == "fsync":
                backend.sync()
            elif self._dirty_since is None:
                self._dirty_since = time.monotonic()
            if self._head_seq + 1 - self._checkpoint_size >= self._checkpoint_every:
                self._checkpoint()
        except Exception as exc:
            self._fail(exc)
            # Nothing in the batch is known to be durable: every write in it fails.
            self._resolve(batch, self._failed)
            return
        self._resolve(accepted, None)
        for item, error in rejected:
            logger.error("receipt rejected by trail %s: %s", backend.name, error.message)
            self._resolve([item], error)

    def _continuity(self, item: Item) -> str | None:
        if self._head_seq < 0:
            if item.seq != 0 or item.prev_hash != GENESIS_HASH:
                return (
                    f"receipt seq {item.seq} cannot start the empty trail {self._backend.name}"
                    " (a chain starts at seq 0 with the genesis prev_hash)"
                )
            return None
        if item.chain_id != self._chain_id:
            return (
                f"receipt of chain {item.chain_id!r} cannot join trail {self._backend.name}"
                f" of chain {self._chain_id!r}"
            )
        if item.seq != self._head_seq + 1 or item.prev_hash != self._head_hash:
            return (
                f"receipt seq {item.seq} does not continue trail {self._backend.name}"
                f" (head is seq {self._head_seq}); is another writer using this trail?"
            )
        return None

    def _resolve(self, items: list[Item], error: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for item in items:
            if item.future is not None and item.loop is not None:
                by_loop.setdefault(item.loop, []).append(item.future)
        for loop, futures in by_loop.items():
            # A closed loop has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, futures, error)

    def _periodic(self) -> None:
        now = time.monotonic()
        if (
            self.durability == "group"
            and self._dirty_since is not None
            and now - self._dirty_since >= self._sync_interval_s
        ):
            self._backend.sync()
            self._dirty_since = None
        if (
            self._checkpoint_interval_s is not None
            and now - self._checkpoint_mono >= self._checkpoint_interval_s
        ):
            self._checkpoint()

    def _checkpoint(self) -> None:
        size = self._head_seq + 1
        self._checkpoint_mono = time.monotonic()
        if self._signer is None or self._chain_id is None or size <= self._checkpoint_size:
            return
        # A checkpoint must never vouch for receipts that are not yet on disk.
        self._backend.sync()
        self._dirty_since = None
        checkpoint = Checkpoint(
            chain_id=self._chain_id,
            size=size,
            head_hash=self._head_hash,
            at=_iso(self._clock.time()),
        ).signed_by(self._signer)
        self._backend.append_checkpoint(checkpoint.canonical_line())
        self._checkpoint_size = size
        self.last_checkpoint = checkpoint
        if self._on_checkpoint is not None:
            self._on_checkpoint(checkpoint)

    def _finish(self) -> None:
        self._backend.flush()
        self._backend.sync()
        self._dirty_since = None
        self._checkpoint()

    def _backend_close(self) -> None:
        try:
            self._backend.close()
        except Exception as exc:
            logger.error("closing receipt trail %s failed: %s", self._backend.name, _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    if isinstance(exc, ReceiptError):
        return exc.message
    return type(exc).__name__


class WriterSink:
    """The :class:`~aegis.core.ReceiptSink` side of a :class:`BatchWriter`, shared by the file
    and SQLite sinks (which only choose the backend)."""

    _writer: BatchWriter

    @property
    def durability(self) -> Durability:
        """What a returned ``write`` promises (see the sink's module docstring)."""
        return self._writer.durability

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint written (or found when the trail was opened)."""
        return self._writer.last_checkpoint

    async def write(self, receipt: Receipt) -> None:
        """Store one sealed receipt; returns when it is as durable as :attr:`durability` says."""
        future = self._writer.submit(receipt)
        if future is not None:
            await future

    async def tail(self) -> Receipt | None:
        """The last receipt written: the trail's last complete receipt, or the newest queued."""
        opened = await asyncio.wrap_future(self._writer.opened)
        return self._writer.last_submitted or opened

    def check(self) -> None:
        """Raise :class:`ReceiptSinkUnavailable` once the trail has failed or closed."""
        self._writer.check()

    async def close(self) -> None:
        """Write what is queued, sync, checkpoint, and release the trail."""
        self._writer.close()
        await asyncio.wrap_future(self._writer.done)

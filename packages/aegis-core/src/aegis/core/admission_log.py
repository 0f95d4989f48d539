"""Calls admitted and not yet settled: the evidence a crash leaves.

A call is billed by its provider from the moment it is sent. If the process dies (kill -9, a
power cut) between admission and settlement, the call would have neither receipt nor charge.
So an admission is recorded, as durably as the receipts, before the Gate hands out its
permit, and marked settled once its receipt is written. A Gate that starts over admissions
never settled writes their receipts (status ``cancelled``, charged the reservation: the
provider may have billed all of it) and charges them (:func:`recovery.recover_admissions`).

Two journals keep them (:class:`AdmissionJournal`):

:class:`LedgerAdmissions`
    In a ledger that keeps notes with its holds (:class:`~aegis.core.ledger.NotingLedger`,
    the SQLite one): the record is written in the reservation's own transaction and dropped
    in the settlement's. One write, one fsync where the ledger fsyncs, and nothing that can
    disagree with the ledger.
:class:`AdmissionLog`
    A file beside the receipt trail, for ledgers that keep no notes (Redis) or are less
    durable than the receipts. The record is fsynced after the reservation (concurrent
    admissions share one fsync); the settled record needs none: if it is lost, the recovery
    finds the hold already resolved in the ledger, and writes nothing twice.
    ``durable=False`` (receipts with ``group`` durability, which already accept losing a
    power cut's last moments) writes each record at once, on the loop, without an fsync: the
    bytes are in the kernel when the permit goes out, so a killed process (kill -9, OOM)
    still leaves them; only a power cut can lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from aegis.core.errors import HoldAlreadyResolved, HoldNotFound, LedgerUnavailable
from aegis.core.ledger import Account, Hold, HoldNote, Ledger, NotingLedger

__all__ = ["AdmissionJournal", "AdmissionLog", "AdmissionRecord", "LedgerAdmissions"]


@dataclass(frozen=True, slots=True)
class AdmissionRecord:
    """What a receipt and a charge need, for a call admitted and sent."""

    receipt_id: str
    request_id: str
    tenant_id: str
    run_id: str | None
    provider: str
    model: str
    capability: str
    started_at: float
    estimated_nanos: int
    reserved_nanos: int
    input_tokens: int
    max_output_tokens: int
    limited: bool = False
    body_sha256: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Its log line's fields (every one a plain value: no recursive ``asdict`` copy on
        the hot path)."""
        out: dict[str, object] = {"op": "admitted"}
        for name in _FIELDS:
            out[name] = getattr(self, name)
        return out

    def text(self) -> str:
        """The record as its log line's JSON (no newline)."""
        return _text(self.to_dict())

    @classmethod
    def parse(cls, line: bytes | str) -> AdmissionRecord | None:
        """The admission a :meth:`text` holds; ``None`` for any other line."""
        record: Any = json.loads(line)
        if not isinstance(record, dict) or record.pop("op", None) != "admitted":
            return None
        return cls(**record)


_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AdmissionRecord))


def _text(record: dict[str, object]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _dumps(record: dict[str, object]) -> bytes:
    return _text(record).encode()


class AdmissionJournal(Protocol):
    """Where the Gate records admissions (see the module docstring)."""

    async def reserve(
        self,
        ledger: Ledger,
        record: AdmissionRecord,
        *,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        """Reserve ``record.reserved_nanos`` as hold ``record.request_id`` and record the
        admission: both or neither. Raises what :meth:`Ledger.reserve` raises, and
        :class:`LedgerUnavailable` when the admission cannot be recorded."""
        ...

    def settled(self, receipt_id: str) -> None:
        """The call's receipt is written (recorded lazily, without waiting)."""
        ...

    async def unsettled(self) -> list[AdmissionRecord]:
        """Admissions recorded and never settled (read at startup)."""
        ...

    async def close(self) -> None:
        """Write what is queued."""
        ...


class LedgerAdmissions:
    """Admissions kept as notes with their holds, in the ledger's own transactions.

    ``owner`` names the receipt trail (one writer at a time), so a restart reads back its
    own calls only, never those of another process sharing the ledger.
    """

    def __init__(self, ledger: NotingLedger, owner: str) -> None:
        self.ledger = ledger
        self.owner = owner

    async def reserve(
        self,
        ledger: Ledger,
        record: AdmissionRecord,
        *,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        if ledger is not self.ledger:
            raise ValueError("the admissions are noted in another ledger than the Gate's")
        return await self.ledger.reserve_noted(
            tenant_id=record.tenant_id,
            hold_id=record.request_id,
            amount_nanos=record.reserved_nanos,
            accounts=accounts,
            ttl_s=ttl_s,
            note=HoldNote(self.owner, record.text()),
        )

    def settled(self, receipt_id: str) -> None:
        """Nothing to do: the note went with the hold's commit or release."""

    async def unsettled(self) -> list[AdmissionRecord]:
        found = (AdmissionRecord.parse(text) for text in await self.ledger.notes(owner=self.owner))
        return [record for record in found if record is not None]

    async def close(self) -> None:
        """Nothing is queued: every note was written with its hold."""


class AdmissionLog:
    """Admissions not yet settled, in a durable file (``path=None``: kept nowhere)."""

    def __init__(self, path: Path | None = None, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self._fd = -1
        self._open = 0
        self._queue: list[tuple[bytes, asyncio.Future[None] | None]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def reserve(
        self,
        ledger: Ledger,
        record: AdmissionRecord,
        *,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        hold = await ledger.reserve(
            tenant_id=record.tenant_id,
            hold_id=record.request_id,
            amount_nanos=record.reserved_nanos,
            accounts=accounts,
            ttl_s=ttl_s,
        )
        try:
            await self.admitted(record)
        except OSError as exc:  # without it a crash would leave a billed call untraced
            with contextlib.suppress(HoldNotFound, HoldAlreadyResolved):
                await ledger.release(tenant_id=record.tenant_id, hold_id=record.request_id)
            raise LedgerUnavailable(f"the admission log cannot be written: {exc.strerror}") from exc
        return hold

    async def unsettled(self) -> list[AdmissionRecord]:
        """Admissions in the file with no settled record (read at startup)."""
        if self.path is None or not self.path.exists():
            return []
        found: dict[str, AdmissionRecord] = {}
        for line in self.path.read_bytes().split(b"\n"):
            try:
                record: Any = json.loads(line)
            except ValueError:
                continue  # a torn last line: that admission was never acknowledged
            if not isinstance(record, dict):
                continue
            op = record.pop("op", None)
            if op == "admitted":
                found[record["receipt_id"]] = AdmissionRecord(**record)
            elif op == "settled":
                found.pop(record.get("receipt_id", ""), None)
        return list(found.values())

    async def admitted(self, record: AdmissionRecord) -> None:
        """Durably record ``record`` (raises ``OSError`` when it cannot be written)."""
        if self.path is None:
            return
        self._open += 1
        if not self.durable:
            self._append(record.to_dict())
            return
        done = asyncio.get_running_loop().create_future()
        self._enqueue(record.to_dict(), done)
        await done

    def settled(self, receipt_id: str) -> None:
        """The call's receipt is written (recorded lazily, without waiting)."""
        if self.path is None:
            return
        self._open = max(0, self._open - 1)
        if not self.durable:
            # A lost settled record only makes the recovery look at a resolved hold.
            with contextlib.suppress(OSError):
                self._append({"op": "settled", "receipt_id": receipt_id})
            return
        self._enqueue({"op": "settled", "receipt_id": receipt_id}, None)

    def _append(self, record: dict[str, object]) -> None:
        assert self.path is not None
        if self._fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._open == 0 and record["op"] == "settled":
            os.ftruncate(self._fd, 0)  # nothing open: the file starts afresh
            return
        os.write(self._fd, _dumps(record) + b"\n")

    def _enqueue(self, record: dict[str, object], done: asyncio.Future[None] | None) -> None:
        self._queue.append((_dumps(record) + b"\n", done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            # Nothing open once this batch is written: the file starts afresh.
            restart = self._open == 0 and all(done is None for _, done in batch)
            sync = any(done is not None for _, done in batch)
            try:
                await asyncio.to_thread(self._write, b"".join(b for b, _ in batch), sync, restart)
            except OSError as exc:
                for _, done in batch:
                    if done is not None and not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if done is not None and not done.done():
                    done.set_result(None)

    def _write(self, data: bytes, sync: bool, restart: bool) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if restart else os.O_APPEND)
        fd = os.open(self.path, flags, 0o600)
        try:
            if not restart:
                os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Write what is queued."""
        if self._flusher is not None:
            await self._flusher
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

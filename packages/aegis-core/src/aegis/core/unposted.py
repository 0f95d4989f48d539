"""Charges the ledger could not post: kept durably until they are posted.

A call that ran has been billed by its provider, whatever the ledger says. When the ledger
fails while a call is settled (a full disk, a locked SQLite file, Redis down for a second),
the charge (or, for a call that used nothing, its release) is written here (appended and
fsynced) before the receipt, and the Gate posts it again before it admits any new call for
that tenant, and in the background until the ledger takes it. Until then the call's hold
still counts against the budget; once it lapses, the journal is what keeps the tenant from
spending the same money twice.

The file is JSON lines: ``{"op": "unposted", ...charge}`` when a charge could not be posted,
``{"op": "posted", "tenant_id", "hold_id"}`` once it was. Replaying it gives the charges still
owed; it is emptied when none is.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["UnpostedCharge", "UnpostedJournal"]


@dataclass(frozen=True, slots=True)
class UnpostedCharge:
    """One charge the ledger has not taken yet."""

    tenant_id: str
    hold_id: str
    """The call's hold (its request id): posting it again is idempotent."""
    amount_nanos: int
    tokens: int | None = None
    """The call's real token count, for rate-limit accounts (``None``: unknown or none)."""
    release: bool = False
    """The call used nothing: its hold is to be released, not charged."""


class UnpostedJournal:
    """Charges owed to the ledger, in memory and (with ``path``) in a durable file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._owed: dict[tuple[str, str], UnpostedCharge] = {}
        self._lock = asyncio.Lock()  # one append at a time, in order
        if path is not None and path.exists():
            self._replay(path.read_bytes())

    def _replay(self, data: bytes) -> None:
        for line in data.split(b"\n"):
            try:
                record = json.loads(line)
            except ValueError:
                continue  # an empty or torn last line: the charge it held was not acknowledged
            if not isinstance(record, dict):
                continue
            key = (str(record.get("tenant_id")), str(record.get("hold_id")))
            if record.get("op") == "unposted":
                self._owed[key] = UnpostedCharge(
                    tenant_id=key[0],
                    hold_id=key[1],
                    amount_nanos=int(record["amount_nanos"]),
                    tokens=None if record.get("tokens") is None else int(record["tokens"]),
                    release=record.get("release") is True,
                )
            elif record.get("op") == "posted":
                self._owed.pop(key, None)

    def owed(self, tenant_id: str | None = None) -> list[UnpostedCharge]:
        """Charges still owed (of one tenant, or all), oldest first."""
        return [c for c in self._owed.values() if tenant_id is None or c.tenant_id == tenant_id]

    def __bool__(self) -> bool:
        return bool(self._owed)

    async def record(self, charge: UnpostedCharge) -> None:
        """Keep ``charge`` until it is posted (durable when this returns)."""
        self._owed[(charge.tenant_id, charge.hold_id)] = charge
        await self._append({"op": "unposted", **asdict(charge)})

    async def posted(self, charge: UnpostedCharge) -> None:
        """``charge`` is in the ledger now."""
        self._owed.pop((charge.tenant_id, charge.hold_id), None)
        await self._append(
            {"op": "posted", "tenant_id": charge.tenant_id, "hold_id": charge.hold_id}
        )

    async def _append(self, record: dict[str, object]) -> None:
        if self.path is None:
            return
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        async with self._lock:
            await asyncio.to_thread(self._write, line, not self._owed)

    def _write(self, line: bytes, empty: bool) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Nothing owed: the file starts afresh (its history is in the receipts).
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if empty else os.O_APPEND)
        fd = os.open(self.path, flags, 0o600)
        try:
            if not empty:
                os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

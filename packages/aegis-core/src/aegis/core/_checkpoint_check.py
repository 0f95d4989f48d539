"""The verifier's checkpoint checks: read and verify signed checkpoints, then hold the trail to
them (a checkpoint whose head is missing shows a cut tail; one whose head hash differs shows
history rewritten after it)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aegis.core._problems import Problem
from aegis.core.checkpoints import Checkpoint
from aegis.core.keyring import Keyring
from aegis.core.receipts import canonical_bytes
from aegis.core.trail import is_sqlite

__all__ = ["CheckpointAt", "check_checkpoints", "checkpoint_lines", "read_checkpoints"]


@dataclass(frozen=True, slots=True)
class CheckpointAt:
    """A verified checkpoint and where it was read."""

    checkpoint: Checkpoint
    where: str


def read_checkpoints(
    files: list[Path],
    keyring: Keyring,
    chain_id: str | None,
    problems: list[Problem],
) -> list[CheckpointAt]:
    found: list[CheckpointAt] = []
    for path in files:
        lines = checkpoint_lines(path)
        label = f"{path}:checkpoint " if is_sqlite(path) else f"{path}:"
        before: CheckpointAt | None = None
        for number, raw in enumerate(lines, 1):
            where = f"{label}{number}"
            if raw is None:
                problems.append(
                    Problem("torn", where, "torn checkpoint line (an interrupted write)")
                )
                continue
            try:
                data = json.loads(raw)
                cp = Checkpoint.from_dict(data)
            except ValueError as exc:
                problems.append(Problem("checkpoint", where, f"not a valid checkpoint: {exc}"))
                continue
            if canonical_bytes(data) != raw:
                problems.append(Problem("checkpoint", where, "checkpoint not in canonical form"))
            sig = cp.signature
            assert sig is not None
            key = keyring.get(sig.key_id)
            if key is None:
                problems.append(
                    Problem(
                        "unknown_key",
                        where,
                        f"checkpoint signed with key_id {sig.key_id!r}, which is not among the"
                        f" verification keys ({', '.join(keyring.key_ids()) or 'none'})",
                    )
                )
                continue
            if key.alg != sig.alg or not key.verify(cp.signing_bytes(), sig.sig):
                problems.append(
                    Problem(
                        "checkpoint",
                        where,
                        f"checkpoint signature does not verify with key {sig.key_id!r}: altered"
                        " or forged",
                    )
                )
                continue
            if chain_id is not None and cp.chain_id != chain_id:
                problems.append(
                    Problem(
                        "foreign_chain",
                        where,
                        f"checkpoint of chain {cp.chain_id!r}, not of this trail's chain"
                        f" {chain_id!r}",
                    )
                )
                continue
            if before is not None and cp.size < before.checkpoint.size:
                problems.append(
                    Problem(
                        "checkpoint",
                        where,
                        f"checkpoint size {cp.size} is smaller than the one before it"
                        f" ({before.checkpoint.size} at {before.where})",
                    )
                )
            before = CheckpointAt(cp, where)
            found.append(before)
    return found


def checkpoint_lines(path: Path) -> list[bytes | None]:
    if is_sqlite(path):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT line FROM aegis_receipt_checkpoints ORDER BY id").fetchall()
        finally:
            db.close()
        return [bytes(r[0]) for r in rows]
    data = path.read_bytes()
    parts: list[bytes | None] = list(data.split(b"\n"))
    tail = parts.pop()
    if tail:
        parts.append(None)
    return parts


def check_checkpoints(
    cps: list[CheckpointAt],
    hashes: dict[int, tuple[str, str]],
    head: tuple[int, str] | None,
    problems: list[Problem],
) -> int:
    """Check each checkpoint against the receipts' hashes; return how many receipts the newest
    matching one covers. ``head``: the furthest receipt's seq and where it is."""
    covered = 0
    head_seq, head_where = head or (-1, "the start")
    for c in cps:
        cp = c.checkpoint
        seq = cp.size - 1
        if seq > head_seq:
            problems.append(
                Problem(
                    "truncated",
                    c.where,
                    f"checkpoint covers {cp.size} receipts (seq 0..{seq}) but the trail ends at"
                    f" seq {head_seq} ({head_where}): {seq - head_seq} receipt(s) cut from the"
                    " tail",
                )
            )
            continue
        found = hashes.get(seq)
        if found is None:
            problems.append(
                Problem(
                    "checkpoint",
                    c.where,
                    f"the checkpoint's head, seq {seq}, is not in the trail",
                )
            )
            continue
        digest, where = found
        if digest != cp.head_hash:
            problems.append(
                Problem(
                    "checkpoint",
                    c.where,
                    f"receipt seq {seq} ({where}) does not hash to this checkpoint's head_hash:"
                    " the trail was rewritten after the checkpoint",
                )
            )
            continue
        covered = max(covered, cp.size)
    return covered

"""Verify a receipt trail: signatures, the hash chain across files, checkpoints, torn tails.

:func:`verify_trail` reads the files of one trail (segments in write order, or an SQLite trail)
and its checkpoint files, and returns a :class:`VerifyReport`: every problem with its file and
line, and a summary of what verified. The trail is intact only when there is no problem.
Large trails are checked in parallel processes, chunk by chunk; the chunks are stitched
together here, so the result is the same either way.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Final

from aegis.core._checkpoint_check import check_checkpoints, read_checkpoints
from aegis.core._problems import Problem, ProblemKind
from aegis.core._verify_chunk import ChunkResult, ChunkTask, Link, RawProblem, verify_chunk
from aegis.core.keyring import Keyring
from aegis.core.receipts import GENESIS_HASH
from aegis.core.trail import find_trail_files, is_sqlite

__all__ = [
    "EXIT_INTACT",
    "EXIT_TAMPERED",
    "EXIT_TORN",
    "EXIT_TRUNCATED",
    "EXIT_USAGE",
    "Problem",
    "ProblemKind",
    "TrailSummary",
    "VerifyReport",
    "plain_usd",
    "verify_trail",
]

EXIT_INTACT: Final = 0
"""Every receipt verified, the chain is whole, and every checkpoint matches."""
EXIT_TAMPERED: Final = 1
"""A bad signature, a broken chain, a gap, a reorder, a foreign or malformed record."""
EXIT_USAGE: Final = 2
"""Bad arguments, missing keys, unreadable files (nothing was verified)."""
EXIT_TORN: Final = 3
"""Intact except for torn lines (interrupted writes, never receipts)."""
EXIT_TRUNCATED: Final = 4
"""Intact up to where it ends, but a checkpoint shows receipts cut from the tail."""

_CHUNK_BYTES: Final = 8 << 20


@dataclass(frozen=True, slots=True)
class TrailSummary:
    """What verified: receipts that passed their own checks, belonging to the trail's chain."""

    receipts: int
    tenants: int
    total_usd: Decimal
    """Exact sum of ``actual_usd``."""
    first_at: str | None
    """Earliest ``started_at``."""
    last_at: str | None
    """Latest ``finished_at``."""
    chain_id: str | None
    head_seq: int | None
    head_hash: str | None
    files: int
    checkpoints: int
    """Checkpoints whose signature verified."""
    covered: int
    """Receipts covered by the newest verified checkpoint (the rest could still be cut)."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The verdict on one trail."""

    summary: TrailSummary
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()
    allow_torn: bool = False

    @property
    def is_intact(self) -> bool:
        """No problem (torn lines excepted when ``allow_torn``)."""
        return self.exit_code == EXIT_INTACT

    @property
    def exit_code(self) -> int:
        """``EXIT_*``: the most serious class of problem found."""
        kinds = {p.kind for p in self.problems}
        if kinds - {"torn", "truncated"}:
            return EXIT_TAMPERED
        if "truncated" in kinds:
            return EXIT_TRUNCATED
        if "torn" in kinds and not self.allow_torn:
            return EXIT_TORN
        return EXIT_INTACT

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        s = self.summary
        return {
            "intact": self.is_intact,
            "exit_code": self.exit_code,
            "summary": {
                "receipts": s.receipts,
                "tenants": s.tenants,
                "total_usd": plain_usd(s.total_usd),
                "first_at": s.first_at,
                "last_at": s.last_at,
                "chain_id": s.chain_id,
                "head_seq": s.head_seq,
                "head_hash": s.head_hash,
                "files": s.files,
                "checkpoints": s.checkpoints,
                "covered": s.covered,
            },
            "problems": [
                {"kind": p.kind, "where": p.where, "message": p.message} for p in self.problems
            ],
            "notes": list(self.notes),
        }


def _worker_context() -> BaseContext:
    # Forking is cheapest (no re-import) but safe only while this process has one thread;
    # otherwise spawn, which needs the caller's ``if __name__ == "__main__":`` guard.
    if threading.active_count() == 1 and "fork" in get_all_start_methods():
        return get_context("fork")
    return get_context("spawn")


def plain_usd(amount: Decimal) -> str:
    """An exact amount as a plain decimal string without trailing zeros (``10.94441``)."""
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(slots=True)
class _Source:
    label: str
    path: Path
    tasks: list[ChunkTask] = field(default_factory=list)


def verify_trail(
    paths: Sequence[str | Path],
    keyring: Keyring,
    *,
    checkpoints: Sequence[str | Path] = (),
    allow_torn: bool = False,
    jobs: int = 1,
    chunk_bytes: int = _CHUNK_BYTES,
    receipt_signatures: bool = True,
) -> VerifyReport:
    """Verify one trail made of ``paths`` (segment files, trail directories, SQLite trails).

    Directories contribute their segments in name order and their ``*.checkpoints.jsonl``;
    files keep the order given. With ``jobs`` > 1, a trail larger than one chunk
    (``chunk_bytes``) is checked by that many worker processes (forked when this process has
    a single thread, else spawned, which needs the calling script's
    ``if __name__ == "__main__":`` guard); the report is the same as with one.

    ``receipt_signatures=False`` is for an auditor holding only the checkpoint key (say the
    Ed25519 public key over HMAC-signed receipts): receipt signatures are not checked, and a
    receipt is authenticated only by a verified checkpoint covering it (the chain hashes tie
    it to the checkpoint's head); ``summary.covered`` says how many are.
    """
    found = find_trail_files([Path(p) for p in paths])
    # An SQLite trail keeps its checkpoints in the same database.
    cp_files = [
        *found.checkpoints,
        *(p for p in found.receipts if is_sqlite(p)),
        *(Path(p) for p in checkpoints),
    ]
    problems: list[Problem] = []
    notes: list[str] = []
    sources = [_Source(str(p), p) for p in found.receipts]
    chain_id = _trail_chain_id(sources)
    misplaced = _misplaced_trail(paths, chain_id)
    if misplaced is not None:
        problems.append(misplaced)
    cps = read_checkpoints(cp_files, keyring, chain_id, problems)
    want = frozenset(c.checkpoint.size - 1 for c in cps)
    for source in sources:
        source.tasks = [
            replace(task, check_signatures=receipt_signatures)
            for task in _plan(source, chain_id or "", keyring, want, chunk_bytes)
        ]
    tasks = [t for s in sources for t in s.tasks]
    if jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(jobs, mp_context=_worker_context()) as pool:
            results = list(pool.map(verify_chunk, tasks, chunksize=1))
    else:
        results = [verify_chunk(t) for t in tasks]
    stitched = _Stitcher(len(sources))
    in_order = iter(results)
    for index, source in enumerate(sources):
        for task in source.tasks:
            stitched.add(index, source.label, task, next(in_order))
    receipt_problems, head = stitched.finish()
    problems[:0] = receipt_problems
    if not sources and not (paths and all(Path(p).is_dir() for p in paths)):
        problems.append(Problem("parse", ", ".join(map(str, paths)) or "-", "no receipt files"))
    elif head is None:
        # A trail directory nothing was written to yet (a proxy stopped before its first
        # receipt) is empty, not tampered: a checkpoint it had would still show a cut.
        notes.append("the trail holds no receipts")
    covered = check_checkpoints(
        cps, stitched.hashes, (head.link.seq, head.where) if head else None, problems
    )
    if not receipt_signatures:
        total = head.link.seq + 1 if head else 0
        notes.append(
            f"receipt signatures not checked: {min(covered, total)} of {total} receipt(s) are"
            " authenticated by a signed checkpoint, the rest are not"
        )
    if not cp_files:
        notes.append("no checkpoint file: receipts cut from the tail cannot be detected")
    elif not checkpoints:
        # The trail's own checkpoints can be cut together with the tail they cover.
        notes.append(
            "only the trail's own checkpoints were checked: pass the newest one from a second"
            " sink (--checkpoints FILE) to detect a tail cut together with them"
        )
    elif (
        head is not None
        and head.link.seq + 1 > covered
        and not any(p.kind == "truncated" for p in problems)
    ):
        notes.append(
            f"{head.link.seq + 1 - covered} receipt(s) after the newest checkpoint are not"
            " covered by one (a cut there cannot be detected)"
        )
    summary = TrailSummary(
        receipts=stitched.receipts,
        tenants=len(stitched.tenants),
        total_usd=stitched.spend,
        first_at=stitched.first_at,
        last_at=stitched.last_at,
        chain_id=chain_id,
        head_seq=head.link.seq if head else None,
        head_hash=head.link.hash if head else None,
        files=len(sources),
        checkpoints=len(cps),
        covered=covered,
    )
    return VerifyReport(summary, tuple(problems), tuple(notes), allow_torn)


@dataclass(frozen=True, slots=True)
class _Head:
    """The furthest receipt of the chain so far, and where it is."""

    link: Link
    label: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.label}:{self.line}"


@dataclass(frozen=True, slots=True)
class _Found:
    raw: RawProblem
    label: str
    line: int
    ref: _Head | None
    """The receipt a chain problem was linked to."""


@dataclass(slots=True)
class _Stitcher:
    """Joins chunk results in trail order, exactly as one pass over the trail would."""

    sources: int
    found: list[_Found] = field(default_factory=list)
    head: _Head | None = None
    hashes: dict[int, tuple[str, str]] = field(default_factory=dict)
    receipts: int = 0
    tenants: set[str] = field(default_factory=set)
    spend: Decimal = Decimal(0)
    first_at: str | None = None
    last_at: str | None = None
    _offset: int = 0
    _label: str = ""

    def add(self, index: int, label: str, task: ChunkTask, result: ChunkResult) -> None:
        if label != self._label:
            self._label, self._offset = label, 0
        offset = self._offset
        head = self.head
        first = result.first
        if first is not None:
            if head is None:
                if first.seq != 0 or first.prev_hash != GENESIS_HASH:
                    message = (
                        f"the trail starts at seq {first.seq}, not at seq 0 with the genesis"
                        " prev_hash: its first receipts (or files) are missing"
                    )
                    genesis = RawProblem("genesis", first.line, message)
                    self.found.append(_Found(genesis, label, offset + first.line, None))
            elif first.seq != head.link.seq + 1 or first.prev_hash != head.link.hash:
                # The chunk was linked from its own first receipt, which does not follow the
                # head: link it again from the head, as one pass would have.
                result = verify_chunk(replace(task, state=(head.link.seq + 1, head.link.hash)))
        for raw in result.problems:
            ref = None
            if raw.kind in _LINK_KINDS:
                ref = head if raw.ref == 0 else _Head(Link(-1, "", "", 0), label, offset + raw.ref)
            self.found.append(_Found(raw, label, offset + raw.line, ref))
        if result.last is not None:
            self.head = _Head(result.last, label, offset + result.last.line)
        if result.torn_bytes:
            later = index < self.sources - 1
            message = (
                f"torn line: {result.torn_bytes} bytes without a terminating newline"
                " (an interrupted write); not a receipt, not counted"
                + ("; the trail continues in the next file" if later else "")
            )
            line = offset + result.lines
            self.found.append(_Found(RawProblem("torn", line, message), label, line, None))
        for seq, (digest, line) in result.hashes.items():
            self.hashes[seq] = (digest, f"{label}:{offset + line}")
        self.receipts += result.receipts
        self.tenants |= result.tenants
        self.spend += result.spend
        if result.first_at is not None and (
            self.first_at is None or result.first_at < self.first_at
        ):
            self.first_at = result.first_at
        if result.last_at is not None and (self.last_at is None or result.last_at > self.last_at):
            self.last_at = result.last_at
        self._offset += result.lines

    def finish(self) -> tuple[list[Problem], _Head | None]:
        """The problems in trail order (a swapped pair as one), and the chain's head."""
        out: list[Problem] = []
        merged: _Found | None = None
        for i, f in enumerate(self.found):
            if f is merged:
                continue
            nxt = self.found[i + 1] if i + 1 < len(self.found) else None
            if nxt is not None and _is_swap(f, nxt):
                merged = nxt
                where = (
                    f"lines {f.line} and {nxt.line}"
                    if f.label == nxt.label
                    else f"{f.label}:{f.line} and {nxt.label}:{nxt.line}"
                )
                out.append(
                    Problem(
                        "seq_order",
                        f"{nxt.label}:{nxt.line}",
                        f"{where} are swapped (seq {f.raw.seq} comes before seq {nxt.raw.seq})",
                    )
                )
                continue
            out.append(_word(f))
        return out, self.head


_LINK_KINDS: Final = frozenset({"chain", "seq_gap", "seq_order"})


def _is_swap(gap: _Found, order: _Found) -> bool:
    # seq e+1 where e was expected, then seq e: a swapped pair, reported once.
    return (
        gap.raw.kind == "seq_gap"
        and order.raw.kind == "seq_order"
        and gap.raw.seq == gap.raw.expected + 1
        and order.raw.seq == gap.raw.expected
        and order.raw.expected == gap.raw.seq + 1
        and order.ref is not None
        and (order.ref.label, order.ref.line) == (gap.label, gap.line)
    )


def _word(f: _Found) -> Problem:
    raw = f.raw
    where = f"{f.label}:{f.line}"
    if raw.kind not in _LINK_KINDS:
        return Problem(raw.kind, where, raw.message)
    ref = f.ref
    if ref is None:
        at = "the start"
    elif ref.label == f.label:
        at = f"line {ref.line}"
    else:
        at = ref.where
    if raw.kind == "chain":
        message = (
            f"prev_hash does not match the hash of the receipt before it (seq {raw.seq - 1},"
            f" {at}): that receipt was altered or replaced, or this one was inserted"
        )
    elif raw.kind == "seq_gap":
        missing = f"seq {raw.expected}" + (f"..{raw.seq - 1}" if raw.seq - 1 > raw.expected else "")
        message = (
            f"seq {raw.seq} follows seq {raw.expected - 1} ({at}):"
            f" {raw.seq - raw.expected} receipt(s) missing ({missing})"
        )
    else:
        message = (
            f"seq {raw.seq} comes after seq {raw.expected - 1} ({at}): receipts reordered or"
            " duplicated"
        )
    return Problem(raw.kind, where, message)


def _first_line(source: _Source) -> bytes | None:
    if is_sqlite(source.path):
        db = sqlite3.connect(f"file:{source.path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT line FROM aegis_receipts ORDER BY id LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
        finally:
            db.close()
        return None if row is None else bytes(row[0])
    with source.path.open("rb") as f:
        line = f.readline(1 << 20)
    return line[:-1] if line.endswith(b"\n") else None


_NAMED_CHAIN: Final = re.compile(r"(?P<trail>.+)-[0-9a-f]{16}")
"""A chain id that names its trail: ``<trail folder name>-<16 hex digits>``."""


def _misplaced_trail(paths: Sequence[str | Path], chain_id: str | None) -> Problem | None:
    """A trail directory holding a chain that names another trail (two replicas' trails
    swapped, or one put in another's place)."""
    named = None if chain_id is None else _NAMED_CHAIN.fullmatch(chain_id)
    if named is None or len(paths) != 1 or not Path(paths[0]).is_dir():
        return None
    folder = Path(paths[0])
    if named["trail"] == folder.name:
        return None
    return Problem(
        "foreign_chain",
        str(folder),
        f"this folder holds the chain of trail {named['trail']!r} (trails swapped or moved)",
    )


def _trail_chain_id(sources: list[_Source]) -> str | None:
    """The chain a trail belongs to: that of its first receipt."""
    for source in sources:
        line = _first_line(source)
        if line is None:
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("chain_id"), str):
            chain: str = data["chain_id"]
            return chain
    return None


def _plan(
    source: _Source, chain_id: str, keyring: Keyring, want: frozenset[int], chunk_bytes: int
) -> list[ChunkTask]:
    path = source.path
    if is_sqlite(path):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (count,) = db.execute("SELECT count(*) FROM aegis_receipts").fetchone()
        finally:
            db.close()
        step = max(1, chunk_bytes // 1024)  # rows of about a kilobyte
        return [
            ChunkTask(str(path), 0, 0, True, chain_id, keyring, want, (i, min(count, i + step - 1)))
            for i in range(1, count + 1, step)
        ] or [ChunkTask(str(path), 0, 0, True, chain_id, keyring, want, (1, 0))]
    size = path.stat().st_size
    tasks = []
    start = 0
    with path.open("rb") as f:
        while start < size:
            end = min(size, start + max(1, chunk_bytes))
            if end < size:
                f.seek(end)
                rest = f.readline()
                end += len(rest)
            tasks.append(ChunkTask(str(path), start, end, end >= size, chain_id, keyring, want))
            start = end
    return tasks or [ChunkTask(str(path), 0, 0, True, chain_id, keyring, want)]

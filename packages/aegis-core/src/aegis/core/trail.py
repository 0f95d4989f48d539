"""Where a receipt trail lives on disk, and how to find its files again.

A trail directory holds segment files ``<prefix>-<YYYYMMDD>-<NNNNNN>.jsonl`` (UTC day of the
first receipt, then a counter that only grows, so name order is write order) and one
``<prefix>.checkpoints.jsonl``. Each segment is JSON Lines: one receipt's canonical bytes and
``\\n`` per line. A record without its ``\\n`` is a torn write, never a receipt.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CHECKPOINTS_SUFFIX",
    "TrailFiles",
    "checkpoint_file_name",
    "find_trail_files",
    "is_sqlite",
    "iter_lines",
    "iter_records",
    "last_complete_line",
    "list_segments",
    "segment_name",
]

CHECKPOINTS_SUFFIX: Final = ".checkpoints.jsonl"
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_SEGMENT: Final = re.compile(r"^(?P<prefix>.+)-(?P<day>\d{8})-(?P<index>\d{6,})\.jsonl$")


def segment_name(prefix: str, day: str, index: int) -> str:
    """The file name of segment ``index`` started on ``day`` (``YYYYMMDD``)."""
    return f"{prefix}-{day}-{index:06d}.jsonl"


def checkpoint_file_name(prefix: str) -> str:
    """The file name of a trail's checkpoints."""
    return f"{prefix}{CHECKPOINTS_SUFFIX}"


def parse_segment(name: str) -> tuple[str, str, int] | None:
    """``(prefix, day, index)`` of a segment file name, or ``None``."""
    m = _SEGMENT.match(name)
    if m is None:
        return None
    return m["prefix"], m["day"], int(m["index"])


def list_segments(directory: Path, prefix: str) -> list[Path]:
    """The trail's segment files in write order."""
    found = []
    for entry in os.scandir(directory):
        parsed = parse_segment(entry.name)
        if parsed is not None and parsed[0] == prefix and entry.is_file():
            found.append((parsed[2], Path(entry.path)))
    return [path for _, path in sorted(found)]


def last_complete_line(path: Path) -> tuple[bytes | None, int]:
    """The file's last ``\\n``-terminated line (without it) and the count of torn bytes after it."""
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return None, 0
        block = 1 << 16
        end = size
        data = b""
        while True:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start) + data
            end = start
            last_nl = data.rfind(b"\n")
            if last_nl >= 0:
                prev_nl = data.rfind(b"\n", 0, last_nl)
                if prev_nl >= 0 or start == 0:
                    torn = len(data) - last_nl - 1
                    return data[prev_nl + 1 : last_nl], torn
            elif start == 0:
                return None, len(data)
            block *= 2


@dataclass(frozen=True, slots=True)
class TrailFiles:
    """The files a verifier reads: receipt sources in order, and checkpoint files."""

    receipts: tuple[Path, ...]
    checkpoints: tuple[Path, ...]


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def is_sqlite(path: Path) -> bool:
    """Whether ``path`` is an SQLite database (a :class:`SqliteReceiptSink` trail)."""
    return path.is_file() and _is_sqlite(path)


def _write_order(path: Path) -> tuple[str, int, str]:
    parsed = parse_segment(path.name)
    return (parsed[0], parsed[2], "") if parsed else (path.name, -1, path.name)


def find_trail_files(paths: list[Path]) -> TrailFiles:
    """Expand directories (segments sorted by name, plus their checkpoint files); files given
    explicitly keep their order, and ``*.checkpoints.jsonl`` files are taken as checkpoints."""
    receipts: list[Path] = []
    checkpoints: list[Path] = []
    for path in paths:
        if path.is_dir():
            names = sorted(
                (
                    p
                    for p in path.iterdir()
                    if p.is_file() and (p.suffix == ".jsonl" or _is_sqlite(p))
                ),
                key=_write_order,
            )
            for p in names:
                (checkpoints if p.name.endswith(CHECKPOINTS_SUFFIX) else receipts).append(p)
        elif path.name.endswith(CHECKPOINTS_SUFFIX):
            checkpoints.append(path)
        else:
            receipts.append(path)
    return TrailFiles(tuple(receipts), tuple(checkpoints))


def iter_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line, bytes, complete)`` for each record of a segment file or SQLite trail."""
    if is_sqlite(path):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for number, (line,) in enumerate(
                db.execute("SELECT line FROM aegis_receipts ORDER BY id"), 1
            ):
                yield number, bytes(line), True
        finally:
            db.close()
        return
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if line.endswith(b"\n"):
                yield number, line[:-1], True
            else:
                yield number, line, False


def iter_records(files: TrailFiles) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """``(where, record, problem)`` for every line of the trail's receipt files, unverified;
    ``record`` is ``None`` (and ``problem`` says why) for lines that are not receipts."""
    for path in files.receipts:
        for number, line, complete in iter_lines(path):
            where = f"{path}:{number}"
            if not complete:
                yield where, None, "torn line (an interrupted write)"
                continue
            try:
                record = json.loads(line)
            except ValueError:
                yield where, None, "not valid JSON"
                continue
            if not isinstance(record, dict) or "seq" not in record:
                yield where, None, "not a receipt"
                continue
            yield where, record, ""

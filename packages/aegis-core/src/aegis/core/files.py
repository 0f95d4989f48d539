"""Files that several processes may write at once (replicas started from one folder): each
write goes to a temporary name of its own and replaces, or creates, the target atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["create_once", "exclusive_lock", "write_atomic"]


def _temporary(path: Path) -> Path:
    # Unique per process and call: two writers never share (or delete) each other's file.
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``: readers see the old file or the new one, never part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        _write(tmp, text, mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def create_once(path: Path, text: str, *, mode: int = 0o600) -> tuple[str, bool]:
    """``path``'s content, writing ``text`` there first if it does not exist yet; whoever
    comes first wins, and everyone reads the same complete file. Returns (content, created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        _write(tmp, text, mode)
        try:
            os.link(tmp, path)  # fails if another process created it first
            created = True
        except FileExistsError:
            created = False
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(), created


def exclusive_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or ``None`` when another
    process holds it. Closing the descriptor releases the lock."""
    import fcntl  # POSIX only; imported here so aegis.core still imports elsewhere

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd

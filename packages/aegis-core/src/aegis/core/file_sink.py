"""``FileReceiptSink``: the receipt trail as append-only JSON Lines files.

Layout (see :mod:`aegis.core.trail`): segment files ``<prefix>-<YYYYMMDD>-<NNNNNN>.jsonl`` in
one directory, each line one receipt's canonical bytes; a new segment starts on a new UTC day
(of the receipt's ``finished_at``) or when ``max_bytes`` would be exceeded, and the hash chain
runs on across segments. Signed checkpoints go to ``<prefix>.checkpoints.jsonl`` (or
``checkpoint_path``, ideally storage the writer cannot rewrite).

Durability (``durability=``):

``"fsync"`` (default)
    ``write`` returns once its receipt is fsynced. Receipts written concurrently share one
    fsync (group commit without a loss window): nothing acknowledged is ever lost.
``"group"``
    ``write`` returns once the receipt is handed to the OS, so a crash of the process loses
    nothing acknowledged; fsync runs at most ``sync_interval_s`` after the first unsynced
    write. Loss window: on power loss or a kernel crash, receipts acknowledged in the last
    ``sync_interval_s`` (plus one fsync's duration) may be lost.
``"buffered"``
    ``write`` returns once the receipt is queued. Loss window: on a process crash, everything
    queued and not yet written; on power loss, whatever the OS had not written back. A write
    failure is raised by the next ``write``. For benchmarks and throw-away trails.

A crash can leave a torn last line (bytes without their ``\\n``). It is never a receipt: on
reopening, the sink logs it and starts a new segment, leaving the torn bytes where they are for
the verifier to report; the chain continues from the last complete receipt.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from aegis.core._writer import BatchWriter, Durability, Item, WriterSink
from aegis.core.checkpoints import Checkpoint
from aegis.core.clock import Clock, SystemClock
from aegis.core.errors import TrailLocked
from aegis.core.files import exclusive_lock
from aegis.core.receipts import Signer
from aegis.core.trail import (
    checkpoint_file_name,
    last_complete_line,
    list_segments,
    parse_segment,
    segment_name,
)

__all__ = ["FileReceiptSink"]

logger = logging.getLogger(__name__)


class FileReceiptSink(WriterSink):
    """Append-only JSON Lines receipt trail in ``directory``, rotated by day and/or size."""

    def __init__(
        self,
        directory: str | Path,
        *,
        prefix: str = "receipts",
        durability: Durability = "fsync",
        sync_interval_s: float = 0.05,
        rotate: Literal["day", "never"] = "day",
        max_bytes: int | None = None,
        checkpoint_signer: Signer | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float | None = 60.0,
        checkpoint_path: str | Path | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Open (or create) the trail; the files are opened on the writer thread.

        Without ``checkpoint_signer`` no checkpoints are written, and a verifier cannot tell a
        trail whose tail was cut from a shorter one. ``on_checkpoint`` is called on the writer
        thread with each new checkpoint, to export it elsewhere.
        """
        if "/" in prefix or not prefix:
            raise ValueError("prefix must be a plain, non-empty file name prefix")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self._backend = _FileBackend(
            self.directory,
            prefix,
            rotate_daily=rotate == "day",
            max_bytes=max_bytes,
            checkpoint_path=None if checkpoint_path is None else Path(checkpoint_path),
        )
        self._writer = BatchWriter(
            self._backend,
            durability=durability,
            sync_interval_s=sync_interval_s,
            checkpoint_signer=checkpoint_signer,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
            clock=clock or SystemClock(),
            on_checkpoint=on_checkpoint,
        )

    @property
    def checkpoint_path(self) -> Path:
        """Where the signed checkpoints go."""
        return self._backend.checkpoint_path


class _FileBackend:
    """Segment files and the checkpoint file; used only by the writer thread."""

    def __init__(
        self,
        directory: Path,
        prefix: str,
        *,
        rotate_daily: bool,
        max_bytes: int | None,
        checkpoint_path: Path | None,
    ) -> None:
        self.directory = directory
        self.name = str(directory)
        self.prefix = prefix
        self.rotate_daily = rotate_daily
        self.max_bytes = max_bytes
        self.checkpoint_path = checkpoint_path or directory / checkpoint_file_name(prefix)
        self._lock_fd = -1
        self._fd = -1
        self._cp_fd = -1
        self._day = ""
        self._index = -1
        self._size = 0
        self._must_rotate = False
        self._buf = bytearray()

    def open(self) -> bytes | None:
        self.directory.mkdir(parents=True, exist_ok=True)
        lock = exclusive_lock(self.directory / f"{self.prefix}.lock")
        if lock is None:
            raise TrailLocked(
                f"receipt trail {self.directory} ({self.prefix}) is locked by another writer"
            )
        self._lock_fd = lock
        segments = list_segments(self.directory, self.prefix)
        last_line: bytes | None = None
        for position, path in enumerate(reversed(segments)):
            line, torn = last_complete_line(path)
            if position == 0:
                parsed = parse_segment(path.name)
                assert parsed is not None
                self._day, self._index = parsed[1], parsed[2]
                if torn:
                    logger.warning(
                        "receipt trail %s: %s ends in a torn line (%d bytes without a newline,"
                        " an interrupted write); it is left for the verifier to report and the"
                        " trail continues in a new segment",
                        self.directory,
                        path.name,
                        torn,
                    )
                    self._must_rotate = True
                else:
                    self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                    self._size = os.fstat(self._fd).st_size
            if line is not None:
                last_line = line
                break
        self._open_checkpoints()
        return last_line

    def _open_checkpoints(self) -> None:
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._cp_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _, torn = last_complete_line(path)
        if torn:
            logger.warning(
                "receipt checkpoints %s end in a torn line (%d bytes); terminating it", path, torn
            )
            os.write(self._cp_fd, b"\n")
            os.fsync(self._cp_fd)

    def last_checkpoint(self) -> Checkpoint | None:
        line, _ = last_complete_line(self.checkpoint_path)
        if not line:
            return None
        try:
            return Checkpoint.from_dict(json.loads(line))
        except ValueError:
            return None

    def should_rotate(self, day: str, nbytes: int) -> bool:
        if self._fd < 0 or self._must_rotate:
            return True
        if self.rotate_daily and day > self._day:
            return True
        size = self._size + len(self._buf)
        return self.max_bytes is not None and size > 0 and size + nbytes > self.max_bytes

    def rotate(self, day: str) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._index += 1
        # The day in a name never goes back, so name order stays write order.
        self._day = max(day, self._day)
        path = self.directory / segment_name(self.prefix, self._day, self._index)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        self._must_rotate = False
        _fsync_dir(self.directory)

    def add(self, item: Item) -> None:
        self._buf += item.line
        self._buf += b"\n"

    def flush(self) -> None:
        if not self._buf:
            return
        view = memoryview(self._buf)
        try:
            while view:
                written = os.write(self._fd, view)
                self._size += written
                view = view[written:]
        finally:
            view.release()
            self._buf = bytearray()

    def sync(self) -> None:
        if self._fd >= 0:
            _fdatasync(self._fd)

    def append_checkpoint(self, line: bytes) -> None:
        os.write(self._cp_fd, line + b"\n")
        os.fsync(self._cp_fd)

    def close(self) -> None:
        # Every descriptor is released even if one fails (a broken data file must not keep
        # the lock, or the trail could never be reopened).
        error: OSError | None = None
        for fd in (self._fd, self._cp_fd, self._lock_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError as exc:
                    error = error or exc
        self._fd = self._cp_fd = self._lock_fd = -1
        if error is not None:
            raise error


# fdatasync skips the metadata an append does not need; macOS has only fsync.
_fdatasync = getattr(os, "fdatasync", os.fsync)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

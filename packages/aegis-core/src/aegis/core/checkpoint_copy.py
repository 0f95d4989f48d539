"""A second sink for checkpoints: each one also appended to a file somewhere else.

Checkpoints kept beside the trail can be cut together with the tail they cover (no key is
needed to delete lines), or deleted with their file. A copy on another volume (a mount the
trail's host cannot rewrite, a file a backup job ships off the box) survives that, and the
verifier given it (``aegis-receipts verify TRAIL --checkpoints COPY``) sees the cut.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aegis.core.checkpoints import Checkpoint

__all__ = ["CheckpointCopy"]

logger = logging.getLogger(__name__)


class CheckpointCopy:
    """An ``on_checkpoint`` callback that appends (and fsyncs) each checkpoint to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, checkpoint: Checkpoint) -> None:
        # Called on the writer thread, after the receipts it covers are on disk.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, checkpoint.canonical_line() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # The trail itself is fine; only this copy of its evidence is missing.
            logger.error("cannot copy a checkpoint to %s: %s", self.path, exc.strerror)

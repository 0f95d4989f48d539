"""Identifiers that sort by time and cost nothing on the hot path."""

from __future__ import annotations

import os
import random
import time

__all__ = ["new_id"]

# Seeded from the OS once per process: ids must be unique, not unguessable (they name records,
# they grant nothing), and os.urandom per call releases the GIL, a cost under load.
_random = random.Random(os.urandom(16))


def new_id() -> str:
    """A UUIDv7-style id: 48 bits of milliseconds, then 80 random bits (32 hex digits)."""
    return f"{time.time_ns() // 1_000_000:012x}{_random.getrandbits(80):020x}"

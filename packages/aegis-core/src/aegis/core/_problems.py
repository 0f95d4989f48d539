"""What the receipt verifier reports: a kind of problem, where it is, and what it means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Problem", "ProblemKind"]

ProblemKind = Literal[
    "parse",
    "canonical",
    "signature",
    "unknown_key",
    "seq_gap",
    "seq_order",
    "chain",
    "foreign_chain",
    "genesis",
    "torn",
    "truncated",
    "checkpoint",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the trail, and where."""

    kind: ProblemKind
    where: str
    """``file:line`` (for an SQLite trail, ``file:row`` counting rows in write order)."""
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

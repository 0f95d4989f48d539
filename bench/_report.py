"""Shared output of the benchmarks: a printed table and a JSON file under bench/results/."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def report(name: str, rows: Sequence[dict[str, Any]], *, note: str = "") -> None:
    """Print ``rows`` as a table and write them to ``bench/results/<name>.json``."""
    if rows:
        columns = list(rows[0])
        widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            print(
                "  ".join(
                    str(row.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True)
                )
            )
    if note:
        print(note)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    doc = {
        "name": name,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": list(rows),
        "note": note,
    }
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")

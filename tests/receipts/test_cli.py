"""``aegis-receipts show`` and ``summarize``: readable tables from a real trail."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def records(trail: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for seg in range(2) for line in trail.lines(seg)]


def test_summarize_sums_spend_exactly_per_tenant_model_and_day(trail: Any) -> None:
    result = trail.cli("summarize", str(trail.directory))
    assert result.returncode == 0, result.stderr
    assert "read without verifying" in result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["tenant", "model", "day", "receipts", "denied", "usd"]
    expected: dict[tuple[str, str, str], list[Any]] = {}
    for r in records(trail):
        group = expected.setdefault(
            (r["tenant_id"], r["model"], r["finished_at"][:10]), [0, 0, Decimal(0)]
        )
        group[0] += 1
        group[1] += r["status"] == "denied"
        group[2] += Decimal(r["actual_usd"])
    body = {tuple(row[:3]): [int(row[3]), int(row[4]), Decimal(row[5])] for row in rows[1:-1]}
    assert body == expected
    total = sum((Decimal(r["actual_usd"]) for r in records(trail)), Decimal(0))
    assert rows[-1][:3] == ["TOTAL", "12", "3"]
    assert Decimal(rows[-1][3]) == total
    assert not rows[-1][3].endswith("0")  # exact, and written plainly
    assert ("acme", "gpt-4o-mini", "2026-11-27") in body  # the second day's segment counted


def test_summarize_by_tenant_as_json(trail: Any) -> None:
    result = trail.cli("summarize", "--by", "tenant", "--json", str(trail.directory))
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert [row["tenant"] for row in doc] == ["acme", "beta", "nobody"]
    assert sum(row["receipts"] for row in doc) == 12
    assert doc[2] == {"tenant": "nobody", "receipts": 1, "denied": 1, "usd": "0"}
    bad = trail.cli("summarize", "--by", "colour", str(trail.directory))
    assert bad.returncode == 2
    assert "--by takes" in bad.stderr


def test_show_prints_decisions_and_filters(trail: Any) -> None:
    result = trail.cli("show", str(trail.directory))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "seq", "finished_at", "tenant", "provider/model", "status", "decision", "usd", "request",
    ]  # fmt: skip
    assert len(lines) == 13
    assert "denied:budget_exceeded(day)" in lines[8]
    assert "cancelled" in lines[7]
    beta = trail.cli("show", "--tenant", "beta", "--limit", "2", str(trail.directory))
    assert [line.split()[0] for line in beta.stdout.splitlines()[1:]] == ["9", "11"]
    as_json = trail.cli("show", "--json", "--limit", "1", str(trail.directory))
    assert json.loads(as_json.stdout)["seq"] == 11


def test_show_reports_lines_it_skips(trail: Any) -> None:
    data = trail.segments[1].read_bytes()
    trail.segments[1].write_bytes(data[:-10])
    result = trail.cli("show", str(trail.directory))
    assert result.returncode == 0
    assert f"skipped {trail.where(1, 4)}: torn line" in result.stderr
    assert len(result.stdout.splitlines()) == 12


def test_a_missing_path_is_a_usage_error(kit: Any, tmp_path: Any) -> None:
    result = kit.run_cli("verify", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr

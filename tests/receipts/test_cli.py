"""``aegis-receipts show`` and ``summarize``: readable tables from a real trail."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aegis.core import FileReceiptSink


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


async def test_verify_trails_checks_each_chain_and_the_worst_verdict_decides(
    trail: Any, tmp_path: Any, clock: Any
) -> None:
    # A second writer's chain beside the first, as a second worker or replica writes it.
    other = tmp_path / "trail.2"
    sink = FileReceiptSink(other, checkpoint_signer=trail.signer, checkpoint_every=4)
    gate = trail.kit.make_gate(trail.signer, sink, clock)
    for i in range(3):
        await trail.kit.ok_call(gate, "acme", f"second-{i}")
    await sink.close()
    both = trail.cli("verify", "--trails", str(trail.directory), str(other))
    assert both.returncode == 0, both.stdout
    assert both.stdout.count("result:      INTACT") == 2
    # As one trail, two chains are not one chain.
    assert trail.cli("verify", str(trail.directory), str(other)).returncode == 1
    # One tampered trail makes the whole answer tampered.
    segment = sorted(other.glob("receipts-*.jsonl"))[0]
    lines = segment.read_bytes().splitlines()
    segment.write_bytes(b"\n".join([lines[0].replace(b"acme", b"acmf"), *lines[1:]]) + b"\n")
    tampered = trail.cli("verify", "--trails", str(trail.directory), str(other))
    assert tampered.returncode == 1, tampered.stdout

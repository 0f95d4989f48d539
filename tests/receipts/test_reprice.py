"""``aegis-receipts reprice``: a trail re-priced offline from the price tables it carries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aegis.core import (
    FileReceiptSink,
    HmacSha256Signer,
    Keyring,
    ManualClock,
    canonical_bytes,
    default_pricing_table,
    reprice_trail,
)
from aegis.core.reprice import table_version


async def _trail_across_a_reload(kit: Any, directory: Path, clock: ManualClock) -> None:
    signer = HmacSha256Signer(key_id="k1", secret=kit.SECRET)
    sink = FileReceiptSink(directory, checkpoint_signer=signer)
    gate = kit.make_gate(signer, sink, clock)
    await kit.ok_call(gate, "acme", "before-1")
    await kit.ok_call(gate, "beta", "before-2", model="gpt-4.1-nano")
    # A price reload: gpt-4o-mini gets dearer; calls admitted from now on use the new table.
    gate.pricing = gate.pricing.with_overrides(
        {"as_of": "2026-12-04", "models": {"gpt-4o-mini": {"input": "0.30", "output": "1.20"}}}
    )
    await kit.ok_call(gate, "acme", "after-1")
    await kit.ok_call(gate, "beta", "after-2")
    await sink.close()


def _lines(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("receipts-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


async def test_a_trail_across_a_price_reload_reprices_with_zero_differences(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    directory = tmp_path / "trail"
    await _trail_across_a_reload(kit, directory, clock)
    records = _lines(directory)
    carried = [r for r in records if r["record"] is not None]
    # Each table is written once, on the first receipt under it, and is content-addressed.
    assert [r["request_id"] for r in carried] == ["before-1", "after-1"]
    assert all(table_version(r["record"]) == r["pricing_version"] for r in carried)
    assert len({r["pricing_version"] for r in records}) == 2
    report = reprice_trail([directory], Keyring([HmacSha256Signer(key_id="k1", secret=kit.SECRET)]))
    assert report.exit_code == 0, report.to_dict()
    assert report.receipts == 4
    assert report.differences == []
    assert report.repriced_nanos == report.recorded_nanos > 0
    result = kit.run_cli("reprice", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 re-priced" in result.stdout
    assert "0 difference(s)" in result.stdout


async def test_an_edited_recorded_price_fails_verification(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    directory = tmp_path / "trail"
    await _trail_across_a_reload(kit, directory, clock)
    segment = sorted(directory.glob("receipts-*.jsonl"))[0]
    lines = segment.read_bytes().splitlines()
    first = json.loads(lines[0])
    first["record"]["models"]["gpt-4o-mini"]["input"] = "0.01"  # cheaper, after the fact
    lines[0] = canonical_bytes(first)
    segment.write_bytes(b"\n".join(lines) + b"\n")
    result = kit.run_cli("reprice", "--json", str(directory))
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["verified"] is False
    # The edited table no longer matches the version its receipts name, either.
    assert any("not its pricing_version" in p for p in doc["problems"])


async def test_reprice_against_another_table_shows_what_it_would_have_cost(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    directory = tmp_path / "trail"
    await _trail_across_a_reload(kit, directory, clock)
    other = default_pricing_table().with_overrides(
        {"models": {"gpt-4o-mini": {"input": "0.15", "output": "0.30"}}}
    )
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(other.to_dict()))
    result = kit.run_cli("reprice", "--json", "--prices", str(prices), str(directory))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["against"] == other.version
    # gpt-4o-mini receipts differ (3 of them), the gpt-4.1-nano one does not.
    assert len(doc["differences"]) == 3
    assert {d["model"] for d in doc["differences"]} == {"gpt-4o-mini"}

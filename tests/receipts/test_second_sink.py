"""Checkpoints shipped to a second sink catch a tail cut together with the trail's own
checkpoints, or with the checkpoint file deleted (issue 21, item 10)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aegis.core import (
    EXIT_INTACT,
    EXIT_TRUNCATED,
    CheckpointCopy,
    FileReceiptSink,
    HmacSha256Signer,
    ManualClock,
)


@pytest.fixture
async def shipped(tmp_path: Path, clock: ManualClock, kit: Any) -> tuple[Path, Path]:
    """A trail of 12 receipts, a checkpoint every 4, each also copied to another folder."""
    signer = HmacSha256Signer(key_id="k1", secret=kit.SECRET)
    directory, copy = tmp_path / "trail", tmp_path / "elsewhere" / "checkpoints.jsonl"
    sink = FileReceiptSink(
        directory, checkpoint_signer=signer, checkpoint_every=4, on_checkpoint=CheckpointCopy(copy)
    )
    gate = kit.make_gate(signer, sink, clock)
    await kit.write_mixed_calls(gate, clock)
    for i in range(4):
        await kit.ok_call(gate, "acme", f"more-{i}")
    await sink.close()
    return directory, copy


def cut_tail(directory: Path, keep: int, *, checkpoints: str) -> None:
    """Keep the first ``keep`` receipts; cut the checkpoints covering more, or delete them."""
    (segment,) = sorted(directory.glob("receipts-*.jsonl"))
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(b"".join(lines[:keep]))
    file = directory / "receipts.checkpoints.jsonl"
    if checkpoints == "delete":
        file.unlink()
        return
    kept = [
        ln for ln in file.read_bytes().splitlines(keepends=True) if json.loads(ln)["size"] <= keep
    ]
    file.write_bytes(b"".join(kept))


@pytest.mark.parametrize("checkpoints", ["cut with the tail", "delete"])
def test_a_tail_cut_with_its_checkpoints_is_caught_by_the_shipped_copy(
    shipped: tuple[Path, Path], checkpoints: str, kit: Any
) -> None:
    directory, copy = shipped
    assert (
        kit.run_cli("verify", str(directory), "--checkpoints", str(copy)).returncode == EXIT_INTACT
    )
    cut_tail(directory, 8, checkpoints=checkpoints)
    alone = kit.run_cli("verify", str(directory))
    assert alone.returncode == EXIT_INTACT  # what the trail alone can show: nothing
    caught = kit.run_cli("verify", str(directory), "--checkpoints", str(copy))
    assert caught.returncode == EXIT_TRUNCATED, caught.stdout
    assert "[truncated]" in caught.stdout


def test_the_verifier_asks_for_the_shipped_checkpoint(shipped: tuple[Path, Path], kit: Any) -> None:
    directory, _ = shipped
    alone = kit.run_cli("verify", str(directory))
    assert "pass the newest one from a second sink (--checkpoints FILE)" in alone.stdout

"""Kill a process that writes receipts (SIGKILL) and show what the trail then proves."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aegis.core import (
    EXIT_INTACT,
    EXIT_TORN,
    FileReceiptSink,
    HmacSha256Signer,
    Keyring,
    ManualClock,
    verify_trail,
)

WRITER = Path(__file__).with_name("receipt_writer.py")


def start_writer(directory: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(directory), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill(process: subprocess.Popen[str], seen: list[str]) -> list[int]:
    """SIGKILL the writer; return every seq it acknowledged (``seen`` was read already)."""
    os.kill(process.pid, signal.SIGKILL)
    out, err = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, err
    lines = [*seen, *out.splitlines()]
    return [int(line.split()[1]) for line in lines if line.startswith("ack ")]


def read_until(process: subprocess.Popen[str], predicate: Any) -> list[str]:
    seen = []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if predicate(line, seen):
            return seen
    raise AssertionError(f"the writer stopped early: {process.communicate()[1]}")


def complete_lines(directory: Path) -> list[bytes]:
    lines = []
    for segment in sorted(directory.glob("receipts-*.jsonl")):
        data = segment.read_bytes()
        lines += data[: data.rfind(b"\n") + 1].splitlines()
    return lines


async def resume(directory: Path, kit: Any, count: int) -> None:
    """A restarted writer: a new Gate and sink continue the trail."""
    signer = HmacSha256Signer(key_id="k1", secret=kit.SECRET)
    sink = FileReceiptSink(directory, checkpoint_signer=signer, checkpoint_every=50)
    gate = kit.make_gate(signer, sink, ManualClock(2_000_000_000.0))
    for i in range(count):
        await kit.ok_call(gate, "acme", f"after-restart-{i}")
    await sink.close()


async def test_sigkill_mid_stream_keeps_every_acknowledged_receipt(
    tmp_path: Path, kit: Any
) -> None:
    directory = tmp_path / "trail"
    writer = start_writer(directory, "stream")
    acked = kill(writer, read_until(writer, lambda line, seen: len(seen) >= 400))
    keyring = Keyring([HmacSha256Signer(key_id="k1", secret=kit.SECRET)])
    report = verify_trail([directory], keyring)
    lines = complete_lines(directory)
    # Whatever the kill interrupted, only a torn last line can be wrong, and it is no receipt.
    segments = sorted(directory.glob("receipts-*.jsonl"))
    assert {p.kind for p in report.problems} <= {"torn"}
    for problem in report.problems:
        assert problem.where == f"{segments[-1]}:{len(segments[-1].read_bytes().splitlines())}"
    assert report.summary.receipts == len(lines)
    assert report.summary.head_seq == len(lines) - 1
    # fsync durability: every receipt whose write returned is in the verified trail.
    assert len(acked) >= 400
    assert max(acked) < len(lines)
    assert {json.loads(line)["seq"] for line in lines} >= set(acked)
    # The trail is resumable: a restarted writer continues the same chain.
    await resume(directory, kit, 3)
    after = verify_trail([directory], keyring, allow_torn=True)
    assert after.exit_code == EXIT_INTACT, after.problems
    assert after.summary.receipts == len(lines) + 3
    assert after.summary.chain_id == report.summary.chain_id


async def test_a_write_cut_short_then_sigkill_leaves_a_reported_torn_line(
    tmp_path: Path, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "trail"
    writer = start_writer(directory, "diskfull")
    acked = kill(writer, read_until(writer, lambda line, seen: line.startswith("failed ")))
    assert acked == list(range(100))
    [segment] = sorted(directory.glob("receipts-*.jsonl"))
    data = segment.read_bytes()
    assert not data.endswith(b"\n")
    keyring = Keyring([HmacSha256Signer(key_id="k1", secret=kit.SECRET)])
    report = verify_trail([directory], keyring)
    assert [(p.kind, p.where) for p in report.problems] == [("torn", f"{segment}:101")]
    assert "torn line: 300 bytes without a terminating newline" in report.problems[0].message
    assert report.exit_code == EXIT_TORN
    assert report.summary.receipts == 100  # exactly the acknowledged ones
    assert report.summary.covered == 100  # the checkpoints vouch for all of them
    result = kit.run_cli("verify", str(directory))
    assert result.returncode == EXIT_TORN
    assert f"{segment}:101: [torn]" in result.stdout
    # Restart: the torn bytes stay where they are, reported; the chain goes on in a new file.
    with caplog.at_level(logging.WARNING, logger="aegis.core.file_sink"):
        await resume(directory, kit, 3)
    assert "ends in a torn line (300 bytes" in caplog.text
    assert segment.read_bytes() == data
    after = verify_trail([directory], keyring)
    assert [(p.kind, p.where) for p in after.problems] == [("torn", f"{segment}:101")]
    assert "the trail continues in the next file" in after.problems[0].message
    assert after.summary.receipts == 103
    assert after.summary.head_seq == 102
    assert verify_trail([directory], keyring, allow_torn=True).exit_code == EXIT_INTACT

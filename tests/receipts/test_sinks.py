"""The receipt sinks: rotation, restart, locking, durability modes, SQLite, fail-closed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest

from aegis.core import (
    Checkpoint,
    FileReceiptSink,
    HmacSha256Signer,
    Keyring,
    ManualClock,
    Receipt,
    ReceiptError,
    ReceiptSinkUnavailable,
    SqliteReceiptSink,
    TrailLocked,
    canonical_bytes,
    verify_trail,
)


def signer(kit: Any) -> HmacSha256Signer:
    return HmacSha256Signer(key_id="k1", secret=kit.SECRET)


def segment_sizes(directory: Path) -> list[int]:
    return [p.stat().st_size for p in sorted(directory.glob("receipts-*.jsonl"))]


def segment_lines(directory: Path) -> list[list[bytes]]:
    return [p.read_bytes().splitlines() for p in sorted(directory.glob("receipts-*.jsonl"))]


async def test_size_rotation_keeps_one_chain_across_files(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    exported: list[Checkpoint] = []
    sink = FileReceiptSink(
        tmp_path,
        rotate="never",
        max_bytes=2500,
        checkpoint_signer=signer(kit),
        checkpoint_every=1000,
        on_checkpoint=exported.append,
    )
    gate = kit.make_gate(signer(kit), sink, clock)
    for i in range(7):
        await kit.ok_call(gate, "acme", f"r{i}")
    await sink.close()
    sizes = segment_sizes(tmp_path)
    assert len(sizes) >= 3
    # A segment goes over max_bytes only when it is one receipt (the first carries the price
    # table): a receipt is never split.
    lines = segment_lines(tmp_path)
    assert all(size <= 2500 or len(seg) == 1 for size, seg in zip(sizes, lines, strict=True))
    seqs = [json.loads(line)["seq"] for lines in segment_lines(tmp_path) for line in lines]
    assert seqs == list(range(7))
    # A checkpoint at each rotation and at close, also handed to on_checkpoint for export.
    assert [c.size for c in exported] == [
        sum(len(lines) for lines in segment_lines(tmp_path)[: i + 1]) for i in range(len(sizes))
    ]
    report = verify_trail([tmp_path], Keyring([signer(kit)]))
    assert report.problems == ()
    assert (report.summary.files, report.summary.covered) == (len(sizes), 7)


async def test_a_restarted_writer_continues_the_chain(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    first = FileReceiptSink(tmp_path, checkpoint_signer=signer(kit))
    gate = kit.make_gate(signer(kit), first, clock)
    last = await kit.ok_call(gate, "acme", "before")
    await first.close()
    second = FileReceiptSink(tmp_path, checkpoint_signer=signer(kit))
    tail = await second.tail()
    assert tail == last
    assert tail is not None
    assert tail.chain_hash() == last.chain_hash()
    assert second.last_checkpoint is not None
    assert second.last_checkpoint.size == 1
    gate = kit.make_gate(signer(kit), second, clock)
    after = await kit.ok_call(gate, "acme", "after")
    await second.close()
    assert (after.chain_id, after.seq, after.prev_hash) == (last.chain_id, 1, last.chain_hash())
    assert verify_trail([tmp_path], Keyring([signer(kit)])).problems == ()


@pytest.mark.parametrize("backend", ["file", "sqlite"])
async def test_a_second_writer_on_the_same_trail_is_refused(
    tmp_path: Path, kit: Any, clock: ManualClock, backend: str
) -> None:
    def sink() -> FileReceiptSink | SqliteReceiptSink:
        if backend == "file":
            return FileReceiptSink(tmp_path)
        return SqliteReceiptSink(tmp_path / "receipts.db")

    first = sink()
    await kit.ok_call(kit.make_gate(signer(kit), first, clock), "acme", "r1")
    second = sink()
    with pytest.raises(TrailLocked, match="locked by another writer"):
        await kit.ok_call(kit.make_gate(signer(kit), second, clock), "acme", "r2")
    await second.close()
    await first.close()


async def test_two_gates_on_one_sink_cannot_fork_the_chain(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    sink = FileReceiptSink(tmp_path)
    one = kit.make_gate(signer(kit), sink, clock)
    two = kit.make_gate(signer(kit), sink, clock)
    await kit.ok_call(one, "acme", "r1")
    await kit.ok_call(two, "acme", "r2")  # resumes from the sink's tail: still one chain
    with pytest.raises(ReceiptError, match="does not continue trail"):
        await kit.ok_call(one, "acme", "r3")  # one's chain is behind: refused, not forked
    await sink.close()
    report = verify_trail([tmp_path], Keyring([signer(kit)]))
    assert report.problems == ()
    assert report.summary.receipts == 2


async def test_a_sink_that_cannot_open_fails_closed(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    sink = FileReceiptSink(not_a_directory)
    gate = kit.make_gate(signer(kit), sink, clock)
    with pytest.raises(ReceiptSinkUnavailable, match="cannot be opened"):
        await kit.ok_call(gate, "acme", "r1")
    with pytest.raises(ReceiptSinkUnavailable):
        await sink.write(await _any_sealed(kit))
    await sink.close()


async def _any_sealed(kit: Any) -> Receipt:
    from aegis.core import MemoryReceiptSink

    memory = MemoryReceiptSink()
    await kit.ok_call(kit.make_gate(signer(kit), memory, ManualClock()), "acme", "x")
    return memory.receipts[0]


@pytest.mark.parametrize("durability", ["fsync", "group", "buffered"])
async def test_concurrent_calls_are_written_in_chain_order(
    durability: Literal["fsync", "group", "buffered"], tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    sink = FileReceiptSink(
        tmp_path, durability=durability, checkpoint_signer=signer(kit), checkpoint_every=25
    )
    assert sink.durability == durability
    gate = kit.make_gate(signer(kit), sink, clock)
    receipts = await asyncio.gather(*(kit.ok_call(gate, "acme", f"r{i}") for i in range(200)))
    await sink.close()
    lines = [line for lines in segment_lines(tmp_path) for line in lines]
    assert len(lines) == 200
    by_seq = {r.seq: r for r in receipts}
    assert [json.loads(line)["seq"] for line in lines] == list(range(200))
    assert all(line == by_seq[i].canonical_line() for i, line in enumerate(lines))
    report = verify_trail([tmp_path], Keyring([signer(kit)]))
    assert report.problems == ()
    assert report.summary.covered == 200


async def test_the_sqlite_sink_is_a_verifiable_trail(
    tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    path = tmp_path / "trail.db"
    sink = SqliteReceiptSink(path, checkpoint_signer=signer(kit), checkpoint_every=3)
    gate = kit.make_gate(signer(kit), sink, clock)
    await kit.write_mixed_calls(gate, clock)
    await sink.close()
    reopened = SqliteReceiptSink(path, checkpoint_signer=signer(kit), checkpoint_every=3)
    gate = kit.make_gate(signer(kit), reopened, clock)
    await kit.ok_call(gate, "beta", "after-restart")
    await reopened.close()
    keyring = Keyring([signer(kit)])
    report = verify_trail([path], keyring)
    assert report.problems == ()
    assert (report.summary.receipts, report.summary.covered) == (9, 9)
    assert kit.run_cli("verify", str(path)).returncode == 0
    with sqlite3.connect(path) as db:
        (line,) = db.execute("SELECT line FROM aegis_receipts WHERE seq = 2").fetchone()
        record = json.loads(line)
        record["actual_usd"] = str(Decimal(record["actual_usd"]) / 2)
        db.execute("UPDATE aegis_receipts SET line = ? WHERE seq = 2", (canonical_bytes(record),))
        db.execute("DELETE FROM aegis_receipts WHERE seq = 5")
    db.close()
    tampered = verify_trail([path], keyring)
    assert [(p.kind, p.where) for p in tampered.problems] == [
        ("signature", f"{path}:3"),
        ("chain", f"{path}:4"),
        ("seq_gap", f"{path}:6"),
        ("checkpoint", f"{path}:checkpoint 1"),  # its head, seq 2, was edited
        ("checkpoint", f"{path}:checkpoint 2"),  # its head, seq 5, was deleted
    ]
    assert "seq 5, is not in the trail" in tampered.problems[-1].message
    result = kit.run_cli("verify", str(path))
    assert result.returncode == 1
    assert f"{path}:6: [seq_gap] seq 6 follows seq 4" in result.stdout


@pytest.mark.parametrize("durability", ["fsync", "group"])
async def test_the_sqlite_sink_takes_concurrent_writes(
    durability: Literal["fsync", "group"], tmp_path: Path, kit: Any, clock: ManualClock
) -> None:
    sink = SqliteReceiptSink(tmp_path / "t.db", durability=durability)
    gate = kit.make_gate(signer(kit), sink, clock)
    await asyncio.gather(*(kit.ok_call(gate, "acme", f"r{i}") for i in range(100)))
    await sink.close()
    report = verify_trail([tmp_path / "t.db"], Keyring([signer(kit)]))
    assert report.problems == ()
    assert report.summary.receipts == 100


async def test_sealed_bytes_are_the_canonical_bytes(kit: Any, clock: ManualClock) -> None:
    from aegis.core import MemoryReceiptSink

    memory = MemoryReceiptSink()
    gate = kit.make_gate(signer(kit), memory, clock)
    await kit.ok_call(gate, "acme", 'odd "id",\n"started_at":"1970" é ✓ \x7f')

    async def failing() -> None:
        async with gate.call(
            tenant_id="acme",
            request_id="r2",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=1,
            max_output_tokens=1,
        ) as call:
            call.error = 'upstream said ,"signature":{"alg":"x"} \u2028'
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await failing()
    for receipt in memory.receipts:
        line = receipt.canonical_line()
        assert line == canonical_bytes(receipt.to_dict())
        assert Receipt.from_dict(json.loads(line)) == receipt
        assert receipt.signature is not None
        assert signer(kit).verify(receipt.signing_bytes(), receipt.signature.sig)
    assert memory.receipts[1].prev_hash == memory.receipts[0].chain_hash()

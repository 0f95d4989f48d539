"""Tamper with a real trail in every way, and show the verifier (library and CLI) catches it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aegis.core import (
    EXIT_INTACT,
    EXIT_TAMPERED,
    EXIT_TORN,
    EXIT_TRUNCATED,
    FileReceiptSink,
    HmacSha256Signer,
    ManualClock,
    canonical_bytes,
)

Trail = Any
Where = Callable[[Trail], str]


@dataclass(frozen=True)
class Tamper:
    name: str
    apply: Callable[[Trail, Path, ManualClock], Awaitable[None]]
    exit_code: int
    expected: list[tuple[str, Where, str]]
    """(kind, where, words of the message) of every problem the verifier must report."""


def at(segment: int, line: int) -> Where:
    return lambda t: t.where(segment, line)


def cp(line: int) -> Where:
    return lambda t: f"{t.checkpoints}:{line}"


def edit(line: bytes, **changes: object) -> bytes:
    """The line with fields changed, still canonical (so only the signature can tell)."""
    data = json.loads(line)
    data.update(changes)
    return canonical_bytes(data)


async def edit_a_field(t: Trail, tmp: Path, clock: ManualClock) -> None:
    lines = t.lines(0)
    lines[1] = edit(lines[1], actual_usd="0")  # seq 1 pretends it cost nothing
    t.write(0, lines)


async def flip_a_signature_byte(t: Trail, tmp: Path, clock: ManualClock) -> None:
    lines = t.lines(1)
    data = json.loads(lines[1])
    sig = data["signature"]["sig"]
    data["signature"]["sig"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    lines[1] = canonical_bytes(data)
    t.write(1, lines)


async def delete_a_line(t: Trail, tmp: Path, clock: ManualClock) -> None:
    lines = t.lines(0)
    del lines[4]  # seq 4, the unknown-tenant denial
    t.write(0, lines)


async def insert_a_forged_line(t: Trail, tmp: Path, clock: ManualClock) -> None:
    lines = t.lines(0)
    # A plausible receipt after seq 2, chained to it, "signed" with a guessed secret.
    forged = json.loads(lines[2])
    forged.update(request_id="forged", seq=3, prev_hash=hashlib.sha256(lines[2]).hexdigest())
    del forged["signature"]
    sig = HmacSha256Signer(key_id="k1", secret=b"a guess, not the key!").sign(
        canonical_bytes(forged)
    )
    forged["signature"] = {"alg": "HS256", "key_id": "k1", "sig": sig}
    lines.insert(3, canonical_bytes(forged))
    t.write(0, lines)


async def swap_two_lines(t: Trail, tmp: Path, clock: ManualClock) -> None:
    lines = t.lines(0)
    lines[5], lines[6] = lines[6], lines[5]  # seq 5 (failed) and seq 6 (cancelled)
    t.write(0, lines)


async def cut_the_tail(t: Trail, tmp: Path, clock: ManualClock) -> None:
    t.write(1, t.lines(1)[:2])  # seq 10 and 11 are gone


async def tear_the_last_write(t: Trail, tmp: Path, clock: ManualClock) -> None:
    data = t.segments[1].read_bytes()
    t.segments[1].write_bytes(data[:-40])  # the last line loses its end and its newline


async def mix_two_chains(t: Trail, tmp: Path, clock: ManualClock) -> None:
    other = tmp / "other"
    signer = t.signer  # the same key, another chain
    sink = FileReceiptSink(other)
    gate = t.kit.make_gate(signer, sink, clock)
    await t.kit.ok_call(gate, "acme", "o-1")
    await t.kit.ok_call(gate, "acme", "o-2")
    await sink.close()
    foreign = next(other.glob("receipts-*.jsonl")).read_bytes().splitlines()
    lines = t.lines(1)
    t.write(1, lines[:2] + foreign + lines[2:])


async def not_canonical(t: Trail, tmp: Path, clock: ManualClock) -> None:
    lines = t.lines(0)
    lines[0] = json.dumps(json.loads(lines[0]), indent=1).replace("\n", " ").encode()
    t.write(0, lines)


TAMPERS = [
    Tamper(
        "edit a field",
        edit_a_field,
        EXIT_TAMPERED,
        [
            ("signature", at(0, 2), "does not verify with key 'k1'"),
            ("chain", at(0, 3), "prev_hash does not match the hash of the receipt before it"),
        ],
    ),
    Tamper(
        "flip a signature byte",
        flip_a_signature_byte,
        EXIT_TAMPERED,
        [
            ("signature", at(1, 2), "altered after it was signed, or forged"),
            ("chain", at(1, 3), "(seq 9, line 2)"),
        ],
    ),
    Tamper(
        "delete a line",
        delete_a_line,
        EXIT_TAMPERED,
        [("seq_gap", at(0, 5), "seq 5 follows seq 3 (line 4): 1 receipt(s) missing (seq 4)")],
    ),
    Tamper(
        "insert a forged line",
        insert_a_forged_line,
        EXIT_TAMPERED,
        [
            ("signature", at(0, 4), "does not verify"),
            ("seq_order", at(0, 5), "seq 3 comes after seq 3 (line 4)"),
            ("chain", at(0, 6), "(seq 3, line 4)"),
        ],
    ),
    Tamper(
        "swap two lines",
        swap_two_lines,
        EXIT_TAMPERED,
        [("seq_order", at(0, 7), "lines 6 and 7 are swapped (seq 6 comes before seq 5)")],
    ),
    Tamper(
        "cut the tail",
        cut_the_tail,
        EXIT_TRUNCATED,
        [("truncated", cp(3), "covers 12 receipts (seq 0..11) but the trail ends at seq 9")],
    ),
    Tamper(
        "tear the last write",
        tear_the_last_write,
        EXIT_TRUNCATED,
        [
            ("torn", at(1, 4), "bytes without a terminating newline"),
            ("truncated", cp(3), "1 receipt(s) cut from the tail"),
        ],
    ),
    Tamper(
        "mix two chains",
        mix_two_chains,
        EXIT_TAMPERED,
        [
            ("foreign_chain", at(1, 3), "receipts from another chain were mixed in"),
            ("foreign_chain", at(1, 4), "(seq 1) in the trail of chain"),
        ],
    ),
    Tamper(
        "re-serialize a line",
        not_canonical,
        EXIT_TAMPERED,
        [("canonical", at(0, 1), "not in canonical form")],
    ),
]


def expected_problems(t: Trail, tamper: Tamper) -> list[tuple[str, str]]:
    return [(kind, where(t)) for kind, where, _ in tamper.expected]


async def test_the_untouched_trail_verifies(trail: Trail) -> None:
    report = trail.verify()
    assert report.problems == ()
    assert report.exit_code == EXIT_INTACT
    records = [json.loads(line) for seg in range(2) for line in trail.lines(seg)]
    assert [r["seq"] for r in records] == list(range(12))
    assert [r["status"] for r in records[:8]] == [
        "ok", "ok", "ok", "denied", "denied", "upstream_error", "cancelled", "denied",
    ]  # fmt: skip
    s = report.summary
    assert s.receipts == 12
    assert s.tenants == 3  # acme, beta, and the unknown tenant that was denied
    assert s.total_usd == sum(Decimal(r["actual_usd"]) for r in records)
    assert s.total_usd > 0
    assert s.first_at == records[0]["started_at"]
    assert s.last_at == records[-1]["finished_at"]
    assert (s.files, s.checkpoints, s.covered, s.head_seq) == (2, 3, 12, 11)


async def test_the_cli_passes_the_untouched_trail(trail: Trail) -> None:
    result = trail.cli("verify", str(trail.directory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "receipts:    12 verified" in result.stdout
    assert "result:      INTACT" in result.stdout
    assert trail.kit.SECRET.decode() not in result.stdout + result.stderr


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
async def test_the_verifier_catches(
    tamper: Tamper, trail: Trail, tmp_path: Path, clock: ManualClock
) -> None:
    await tamper.apply(trail, tmp_path, clock)
    report = trail.verify()
    assert [(p.kind, p.where) for p in report.problems] == expected_problems(trail, tamper)
    for problem, (_, _, words) in zip(report.problems, tamper.expected, strict=True):
        assert words in problem.message, str(problem)
    assert report.exit_code == tamper.exit_code


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
async def test_the_cli_catches(
    tamper: Tamper, trail: Trail, tmp_path: Path, clock: ManualClock
) -> None:
    await tamper.apply(trail, tmp_path, clock)
    result = trail.cli("verify", str(trail.directory))
    assert result.returncode == tamper.exit_code, result.stdout + result.stderr
    for kind, where, words in tamper.expected:
        assert f"{where(trail)}: [{kind}]" in result.stdout
        assert words in result.stdout
    json_result = trail.cli("verify", "--json", str(trail.directory))
    doc = json.loads(json_result.stdout)
    assert json_result.returncode == tamper.exit_code
    assert [(p["kind"], p["where"]) for p in doc["problems"]] == expected_problems(trail, tamper)
    assert doc["intact"] is False


async def test_a_torn_tail_alone_is_its_own_verdict(trail: Trail) -> None:
    # As after a crash: the last write is torn and no checkpoint covers it.
    await tear_the_last_write(trail, trail.directory, ManualClock())
    trail.checkpoints.write_bytes(
        b"".join(line + b"\n" for line in trail.checkpoints.read_bytes().splitlines()[:2])
    )
    report = trail.verify()
    assert [(p.kind, p.where) for p in report.problems] == [("torn", trail.where(1, 4))]
    assert report.exit_code == EXIT_TORN
    assert report.summary.receipts == 11  # the torn record is never accepted
    assert trail.verify(allow_torn=True).exit_code == EXIT_INTACT
    result = trail.cli("verify", str(trail.directory))
    assert result.returncode == EXIT_TORN
    assert trail.cli("verify", "--allow-torn", str(trail.directory)).returncode == 0


async def test_a_cut_tail_is_caught_by_an_exported_checkpoint(trail: Trail, tmp_path: Path) -> None:
    exported = tmp_path / "exported.checkpoints.jsonl"
    exported.write_bytes(trail.checkpoints.read_bytes())
    # The attacker cuts the tail and the local checkpoint that covered it.
    await cut_the_tail(trail, tmp_path, ManualClock())
    trail.checkpoints.write_bytes(
        b"".join(line + b"\n" for line in trail.checkpoints.read_bytes().splitlines()[:2])
    )
    assert trail.verify().problems == ()  # undetectable from the trail alone
    report = trail.verify(checkpoints=[exported])
    assert [(p.kind, p.where) for p in report.problems] == [("truncated", f"{exported}:3")]
    result = trail.cli("verify", "--checkpoints", str(exported), str(trail.directory))
    assert result.returncode == EXIT_TRUNCATED
    assert f"{exported}:3: [truncated]" in result.stdout


async def test_rewriting_history_before_a_checkpoint_is_caught(trail: Trail) -> None:
    # Re-sign and re-chain everything after an edit (the writer's key is stolen): the chain is
    # whole again, but the checkpoints pin the old heads.
    signer = trail.signer
    lines = [line for seg in range(2) for line in trail.lines(seg)]
    records = [json.loads(line) for line in lines]
    records[1]["actual_usd"] = "0"
    prev = "0" * 64
    rewritten = []
    for r in records:
        r["prev_hash"] = prev
        del r["signature"]
        r["signature"] = {"alg": "HS256", "key_id": "k1", "sig": signer.sign(canonical_bytes(r))}
        line = canonical_bytes(r)
        rewritten.append(line)
        prev = hashlib.sha256(line).hexdigest()
    trail.write(0, rewritten[:8])
    trail.write(1, rewritten[8:])
    report = trail.verify()
    assert {p.kind for p in report.problems} == {"checkpoint"}
    assert [p.where for p in report.problems] == [f"{trail.checkpoints}:{n}" for n in (1, 2, 3)]
    assert "the trail was rewritten after the checkpoint" in report.problems[0].message
    assert report.exit_code == EXIT_TAMPERED


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
async def test_checking_in_chunks_reports_the_same(
    tamper: Tamper, trail: Trail, tmp_path: Path, clock: ManualClock
) -> None:
    await tamper.apply(trail, tmp_path, clock)
    whole = trail.verify()
    for chunk_bytes in (1, 1500, 2500):  # a chunk per line, and chunks split anywhere
        assert trail.verify(chunk_bytes=chunk_bytes) == whole


async def test_worker_processes_report_the_same(
    trail: Trail, tmp_path: Path, clock: ManualClock
) -> None:
    for tamper in (swap_two_lines, delete_a_line, flip_a_signature_byte, mix_two_chains):
        await tamper(trail, tmp_path, clock)
    whole = trail.verify()
    assert len(whole.problems) >= 4
    assert trail.verify(jobs=2, chunk_bytes=2000) == whole

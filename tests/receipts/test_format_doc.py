"""RECEIPTS.md is a specification: its worked example and its minimal verifier must hold."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from aegis.core import Checkpoint, HmacSha256Signer, Keyring, Receipt, verify_trail

DOC = Path(__file__).parents[2] / "packages" / "aegis-core" / "RECEIPTS.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_worked_example_verifies(tmp_path: Path) -> None:
    text = DOC.read_text()
    receipt_line, checkpoint_line = (b.strip().encode() for b in blocks("json"))
    signer = HmacSha256Signer(key_id="demo-2026-11", secret=b"example-secret-0123456789abcdef")
    assert "`example-secret-0123456789abcdef`" in text
    receipt = Receipt.from_dict(json.loads(receipt_line))
    assert receipt.canonical_line() == receipt_line
    assert hashlib.sha256(receipt.signing_bytes()).hexdigest() in text
    assert f"`{receipt.chain_hash()}`" in text
    checkpoint = Checkpoint.from_dict(json.loads(checkpoint_line))
    assert checkpoint.head_hash == receipt.chain_hash()
    (tmp_path / "receipts-20261126-000000.jsonl").write_bytes(receipt_line + b"\n")
    (tmp_path / "receipts.checkpoints.jsonl").write_bytes(checkpoint_line + b"\n")
    report = verify_trail([tmp_path], Keyring([signer]))
    assert report.problems == ()
    assert (report.summary.receipts, report.summary.covered) == (1, 1)


def test_the_minimal_verifier_agrees_with_aegis(trail: Any) -> None:
    [code] = [b for b in blocks("python") if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    size, head = namespace["verify"](str(trail.segments[0]), {"k1": trail.kit.SECRET})
    checkpoints = [json.loads(line) for line in trail.checkpoints.read_bytes().splitlines()]
    assert (size, head) == (checkpoints[1]["size"], checkpoints[1]["head_hash"])
    lines = trail.lines(0)
    record = json.loads(lines[3])
    record["actual_usd"] = "1"
    lines[3] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    trail.write(0, lines)
    with pytest.raises(AssertionError, match=r":4: altered$"):
        namespace["verify"](str(trail.segments[0]), {"k1": trail.kit.SECRET})

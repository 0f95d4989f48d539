"""The verifier's hot loop: check one run of receipt lines on its own.

Each line is parsed, re-serialized to canonical bytes (the stored bytes are never trusted; a
line that differs from its canonical form is reported and the canonical bytes are what is
hashed and verified), its signature checked, and it is linked to the line before it. The
first receipt of a chunk is linked by the caller, which also stitches chunks together; that
is what lets chunks run in parallel processes.
"""

from __future__ import annotations

import hashlib
import json
import json.scanner
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from aegis.core._problems import ProblemKind
from aegis.core.keyring import Keyring
from aegis.core.receipts import encode_dict
from aegis.core.signing import SignatureVerifier

__all__ = [
    "RECEIPT_KEYS",
    "RECEIPT_KEYS_V1",
    "ChunkResult",
    "ChunkTask",
    "Link",
    "RawProblem",
    "verify_chunk",
]


RECEIPT_KEYS_V1: Final = frozenset(
    {
        "v", "receipt_id", "request_id", "tenant_id", "run_id", "provider", "model",
        "capability", "decision", "status", "usage", "usage_source", "estimated_usd",
        "reserved_usd", "actual_usd", "overage", "late", "pricing_version", "pricing_as_of",
        "policy_version", "started_at", "finished_at", "latency_us", "upstream_status", "error",
        "body_sha256", "chain_id", "seq", "prev_hash", "signature",
    }
)  # fmt: skip
RECEIPT_KEYS: Final = RECEIPT_KEYS_V1 | {"bound", "record"}
"""The members of a version 2 receipt (version 1 has the others only)."""
_SIG_KEYS: Final = frozenset({"alg", "key_id", "sig"})
_MAX_SEQ: Final = 2**53 - 1


def _reject(constant: str) -> None:
    raise ValueError(f"{constant} is not valid JSON")


def _unencodable(value: object) -> object:
    raise TypeError(type(value).__name__)


_ENCODE: Final = encode_dict
_C_ENCODER: Final[Any] = vars(json.encoder)["c_make_encoder"]
_C_ESCAPE_ASCII: Final[Any] = vars(json.encoder)["c_encode_basestring_ascii"]
_ASCII_ENCODER: Final = _C_ENCODER(
    None, _unencodable, _C_ESCAPE_ASCII, None, ":", ",", True, False, False
)


def _ENCODE_ASCII(data: dict[str, Any]) -> str:
    return "".join(_ASCII_ENCODER(data, 0))


_SIG_MARK: Final = b',"signature":{'
_NEXT_MARK: Final = b',"started_at":'
_SCAN: Final = json.scanner.make_scanner(
    json.JSONDecoder(parse_constant=_reject)  # type: ignore[arg-type]
)


@dataclass(frozen=True, slots=True)
class RawProblem:
    """A problem at a line of a chunk (relative to the chunk's first line, which is 1).

    Problems of the chain (``chain``, ``seq_gap``, ``seq_order``) carry what the caller needs
    to word them: ``seq``, the ``expected`` seq, and ``ref``, the line of the receipt this one
    was linked to (0: a receipt before this chunk).
    """

    kind: ProblemKind
    line: int
    message: str = ""
    seq: int = -1
    expected: int = -1
    ref: int = 0


@dataclass(frozen=True, slots=True)
class Link:
    """Where a receipt sits in the chain."""

    seq: int
    prev_hash: str
    hash: str
    line: int


@dataclass(frozen=True, slots=True)
class ChunkTask:
    """One run of lines: a byte range of a file, or rows of an SQLite trail."""

    path: str
    start: int
    end: int
    is_file_end: bool
    chain_id: str
    keyring: Keyring
    want: frozenset[int]
    """Sequence numbers whose chain hash the caller needs (checkpoint heads)."""
    sqlite_rows: tuple[int, int] | None = None
    """``(first, last)`` row positions (1-based) when the source is an SQLite trail."""
    state: tuple[int, str] | None = None
    """``(expected seq, expected prev_hash)`` on entry, when the receipts before are known;
    otherwise the chunk's first receipt sets them (and the caller links that one)."""
    check_signatures: bool = True
    """``False``: leave receipt signatures unchecked (an auditor holding only the checkpoint
    key authenticates receipts through the checkpoints that cover them)."""


@dataclass(slots=True)
class ChunkResult:
    """What a chunk found; line numbers are relative to the chunk (1 = its first line)."""

    lines: int = 0
    first: Link | None = None
    last: Link | None = None
    problems: list[RawProblem] = field(default_factory=list)
    torn_bytes: int = 0
    receipts: int = 0
    tenants: set[str] = field(default_factory=set)
    spend: Decimal = Decimal(0)
    first_at: str | None = None
    last_at: str | None = None
    hashes: dict[int, tuple[str, int]] = field(default_factory=dict)


def read_chunk(task: ChunkTask) -> list[bytes]:
    """The chunk's lines; for a file, the last item is what follows the last newline."""
    if task.sqlite_rows is not None:
        first, last = task.sqlite_rows
        db = sqlite3.connect(f"file:{task.path}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT line FROM aegis_receipts ORDER BY id LIMIT ? OFFSET ?",
                (last - first + 1, first - 1),
            ).fetchall()
        finally:
            db.close()
        return [bytes(r[0]) for r in rows] + [b""]
    with Path(task.path).open("rb") as f:
        f.seek(task.start)
        data = f.read(task.end - task.start)
    return data.split(b"\n")


def verify_chunk(task: ChunkTask) -> ChunkResult:
    """Check every line of the chunk and link them; see the module docstring."""
    lines = read_chunk(task)
    tail = lines.pop()
    out = ChunkResult(lines=len(lines))
    if tail:
        if task.is_file_end:
            out.torn_bytes = len(tail)
            out.lines += 1
        else:  # the caller splits chunks at newlines; this cannot be torn
            lines.append(tail)
            out.lines += 1
    _check_lines(task, lines, out)
    return out


def _check_lines(task: ChunkTask, lines: list[bytes], out: ChunkResult) -> None:
    # The hot loop: about a million iterations per trail, so names are bound locally and the
    # spend is summed per distinct amount (exact Decimal arithmetic, once per amount).
    problems = out.problems
    add = problems.append
    keyring_get = task.keyring.get
    check_signatures = task.check_signatures
    checkers: dict[
        str, tuple[SignatureVerifier | None, str, Callable[[bytes, str], bool] | None]
    ] = {}
    chain_id = task.chain_id
    want = task.want
    hashes = out.hashes
    sha256 = hashlib.sha256
    encode = _ENCODE
    encode_ascii = _ASCII_ENCODER
    backslash = b"\\"
    scan = _SCAN
    receipt_keys = RECEIPT_KEYS
    receipt_keys_v1 = RECEIPT_KEYS_V1
    sig_keys = _SIG_KEYS
    sig_mark = _SIG_MARK
    next_mark = _NEXT_MARK
    tenants = out.tenants
    amounts: dict[str, int] = {}
    amount_lines: dict[str, int] = {}
    first_at = out.first_at
    last_at = out.last_at
    receipts = 0
    expected_seq, expected_prev = task.state or (-1, "")
    last_line = 0
    last_prev = ""
    for number, raw in enumerate(lines, 1):
        try:
            text = raw.decode()
            d, end = scan(text, 0)
            if end != len(text):
                raise ValueError(f"extra data at column {end + 1}")
        except (ValueError, StopIteration) as exc:
            msg = "empty line" if not raw else f"not valid JSON ({_json_error(exc)})"
            add(RawProblem("parse", number, f"{msg}; not a receipt"))
            continue
        if type(d) is not dict or not (
            (d.keys() == receipt_keys and d["v"] == 2)
            or (d.keys() == receipt_keys_v1 and d["v"] == 1)
        ):
            add(RawProblem("parse", number, _shape_problem(d)))
            continue
        sig = d["signature"]
        seq = d["seq"]
        prev = d["prev_hash"]
        actual = d["actual_usd"]
        try:
            if (
                type(seq) is not int
                or not 0 <= seq <= _MAX_SEQ
                or type(sig) is not dict
                or sig.keys() != sig_keys
                or type(sig["key_id"]) is not str
                or type(sig["sig"]) is not str
                or type(actual) is not str
            ):
                raise TypeError
            # Fast path: with no backslash in the line nothing was escaped, so if the ASCII
            # encoder reproduces it every string is plain printable ASCII, where the ASCII and
            # the canonical encoders agree byte for byte. Otherwise use the canonical encoder.
            canon = "".join(encode_ascii(d, 0)).encode()
            if canon != raw or backslash in raw:
                canon = encode(d).encode()
        except (TypeError, ValueError):
            add(RawProblem("parse", number, "malformed receipt: a field has the wrong type"))
            continue
        ok = True
        if canon != raw:
            ok = False
            add(RawProblem("canonical", number, _canonical_problem(raw, canon)))
        # The signed bytes are the canonical bytes without the "signature" member. ``canon``
        # is our own serialization of exactly the receipt keys, sorted, so that member runs
        # from its key to the next key, "started_at"; a quote inside a string is always
        # escaped, so neither marker can match inside a value.
        if check_signatures:
            at = canon.rfind(sig_mark)
            signed = canon[:at] + canon[canon.find(next_mark, at) :]
            key_id = sig["key_id"]
            checker = checkers.get(key_id)
            if checker is None:
                key = keyring_get(key_id)
                checker = checkers[key_id] = (
                    key,
                    key.alg if key else "",
                    key.verify if key else None,
                )
            key, key_alg, key_verify = checker
            if key_verify is None:
                ok = False
                add(
                    RawProblem(
                        "unknown_key",
                        number,
                        f"signed with key_id {key_id!r}, which is not among the verification keys"
                        f" ({', '.join(task.keyring.key_ids()) or 'none'})",
                    )
                )
            elif key_alg != sig["alg"]:
                ok = False
                add(
                    RawProblem(
                        "signature",
                        number,
                        f"signature alg {sig['alg']!r} does not match key {key_id!r} ({key_alg})",
                    )
                )
            elif not key_verify(signed, sig["sig"]):
                ok = False
                add(
                    RawProblem(
                        "signature",
                        number,
                        f"signature does not verify with key {key_id!r} ({key_alg}):"
                        " the receipt was altered after it was signed, or forged",
                    )
                )
        digest = sha256(canon).hexdigest()
        if d["chain_id"] != chain_id:
            add(
                RawProblem(
                    "foreign_chain",
                    number,
                    f"receipt of chain {d['chain_id']!r} (seq {seq}) in the trail of chain"
                    f" {chain_id!r}: receipts from another chain were mixed in",
                )
            )
            continue
        if seq != expected_seq or prev != expected_prev:
            if expected_seq < 0:
                out.first = Link(seq, prev, digest, number)
            else:
                kind: ProblemKind = (
                    "chain"
                    if seq == expected_seq
                    else "seq_gap"
                    if seq > expected_seq
                    else "seq_order"
                )
                add(RawProblem(kind, number, "", seq, expected_seq, last_line))
        # A receipt out of place (seq going back) is reported above; linking goes on from the
        # furthest point reached, so one swap or duplicate is one problem, not a cascade.
        if seq >= expected_seq:
            expected_seq = seq + 1
            expected_prev = digest
            last_line = number
            last_prev = prev
        if seq in want:
            hashes[seq] = (digest, number)
        if ok:
            receipts += 1
            tenants.add(d["tenant_id"])
            if actual in amounts:
                amounts[actual] += 1
            else:
                amounts[actual] = 1
                amount_lines[actual] = number
            started = d["started_at"]
            finished = d["finished_at"]
            if first_at is None or started < first_at:
                first_at = started
            if last_at is None or finished > last_at:
                last_at = finished
    if last_line:
        out.last = Link(expected_seq - 1, last_prev, expected_prev, last_line)
    spend = Decimal(0)
    for amount, count in amounts.items():
        try:
            spend += Decimal(amount) * count
        except InvalidOperation:
            add(
                RawProblem(
                    "parse", amount_lines[amount], f"actual_usd {amount!r} is not a decimal amount"
                )
            )
    out.receipts = receipts
    out.spend = spend
    out.first_at = first_at
    out.last_at = last_at


def _json_error(exc: ValueError | StopIteration) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, StopIteration):
        return "no JSON value at column 1"
    return str(exc)


def _shape_problem(d: object) -> str:
    if type(d) is not dict:
        return f"a JSON {type(d).__name__}, not a receipt object"
    if d.get("kind") == "checkpoint":
        return "a checkpoint record in a receipt file"
    version = d.get("v")
    keys = RECEIPT_KEYS_V1 if version == 1 else RECEIPT_KEYS
    missing = sorted(keys - d.keys())
    extra = sorted(d.keys() - keys)
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected {', '.join(map(str, extra))}")
    if not parts:
        return f"not a receipt: version {version!r} is not 1 or 2"
    return f"not a version-{1 if version == 1 else 2} receipt: {'; '.join(parts)}"


def _canonical_problem(raw: bytes, canon: bytes) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(raw, canon, strict=False)) if a != b),
        min(len(raw), len(canon)),
    )
    return (
        f"not in canonical form (differs from its re-serialization at byte {at + 1}); verified"
        " as re-serialized"
    )

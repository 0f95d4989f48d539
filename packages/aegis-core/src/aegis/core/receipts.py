"""Receipts: one signed, hash-chained record of every Gate decision.

A receipt is signed over its canonical bytes without the ``signature`` field, and chained by
the SHA-256 of the previous receipt's canonical bytes *with* its signature. Canonical bytes are
JSON with sorted keys, no insignificant white space, UTF-8, and only strings, integers below
2**53, booleans, null, objects and arrays, so they coincide with RFC 8785 (JCS) output.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, Protocol

from aegis.core.ids import new_id
from aegis.core.pricing import STANDARD_TERMS, BillingTerms, Usage

__all__ = [
    "GENESIS_HASH",
    "RECEIPT_VERSION",
    "Bound",
    "Decision",
    "MemoryReceiptSink",
    "Receipt",
    "ReceiptChain",
    "ReceiptSink",
    "ReceiptStatus",
    "Signature",
    "Signer",
    "canonical_bytes",
    "new_receipt_id",
]

ReceiptStatus = Literal["ok", "upstream_error", "cancelled", "denied", "alert"]
"""``alert``: not a call but a budget alert (see :mod:`aegis.core.alerts`)."""
GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first receipt of a chain (``seq`` 0)."""
RECEIPT_VERSION: Final = 2
"""Version 2 adds ``bound`` and ``record`` and the billed dimensions of ``usage``; version 1
receipts keep their exact bytes (they are read and re-serialized in their own shape)."""
_STARTED_AT_MARK: Final = b',"started_at":'


def new_receipt_id() -> str:
    """A UUIDv7-style id: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    return new_id()


_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _reject(value: object) -> object:
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def _dict_encoder() -> Callable[[dict[str, Any]], str]:
    # JSONEncoder.encode builds a fresh C encoder per call; receipts are encoded on the Gate's
    # hot path and by the verifier a million times, so build it once (same output).
    make = getattr(json.encoder, "c_make_encoder", None)
    escape = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or escape is None:  # pragma: no cover - CPython always has them
        return _ENCODER.encode
    encoder = make(None, _reject, escape, None, ":", ",", True, False, False)

    def encode(data: dict[str, Any]) -> str:
        return "".join(encoder(data, 0))

    return encode


encode_dict: Final = _dict_encoder()
"""Canonical JSON text of a dict (the fast path of :func:`canonical_bytes`)."""


def canonical_bytes(data: Any) -> bytes:
    """The canonical JSON bytes of plain data (see the module docstring)."""
    if type(data) is dict:
        return encode_dict(data).encode()
    return _ENCODER.encode(data).encode()


@dataclass(frozen=True, slots=True)
class Decision:
    """What the Gate decided, and why."""

    allowed: bool
    reason: str | None = None
    """Why a call was denied: ``budget_exceeded``, ``model_not_allowed`` ..."""
    budget: str | None = None
    """The budget that denied it (``per_run``, ``day`` ...)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """What a call's reservation was computed from, so it can be re-priced offline."""

    input_tokens: int
    """The input bound (tokens the request can carry, the unseen-input allowance included)."""
    output_tokens: int
    """The output limit the call was sent with (reasoning/thinking included)."""
    unseen_input_tokens: int = 0
    """The part of ``input_tokens`` allowed for input the body does not show
    (``previous_response_id``, search results, ``cachedContent``)."""
    exceeded: bool = False
    """The real usage went beyond the bound (flagged, and charged in full)."""
    terms: BillingTerms = STANDARD_TERMS
    """The tier, tool calls, audio and cache writes the worst case was priced under."""

    def to_dict(self) -> dict[str, Any]:
        terms = self.terms
        return {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "unseen_input": self.unseen_input_tokens,
            "exceeded": self.exceeded,
            "terms": {
                "service_tier": terms.service_tier,
                "tool_calls": dict(terms.tool_calls),
                "audio_input": terms.audio_input,
                "audio_output": terms.audio_output,
                "cache_writes": terms.cache_writes,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bound:
        terms = data["terms"]
        return cls(
            data["input"],
            data["output"],
            data["unseen_input"],
            data["exceeded"],
            BillingTerms(
                service_tier=terms["service_tier"],
                tool_calls=tuple(terms["tool_calls"].items()),
                audio_input=terms["audio_input"],
                audio_output=terms["audio_output"],
                cache_writes=terms["cache_writes"],
            ),
        )


def usage_to_dict(usage: Usage, version: int = RECEIPT_VERSION) -> dict[str, Any]:
    """A receipt's ``usage`` member (version 1: the four token counts only)."""
    out: dict[str, Any] = {
        "input": usage.input_tokens,
        "cached_input": usage.cached_input_tokens,
        "output": usage.output_tokens,
        "reasoning": usage.reasoning_tokens,
    }
    if version >= 2:
        out.update(
            {
                "cache_write": usage.cache_write_tokens,
                "cache_write_1h": usage.cache_write_1h_tokens,
                "audio_input": usage.audio_input_tokens,
                "cached_audio_input": usage.cached_audio_input_tokens,
                "audio_output": usage.audio_output_tokens,
                "tool_calls": dict(usage.tool_calls),
                "service_tier": usage.service_tier,
            }
        )
    return out


def usage_from_dict(data: dict[str, Any]) -> Usage:
    """The :class:`Usage` of a receipt's ``usage`` member (either version)."""
    return Usage(
        input_tokens=data["input"],
        cached_input_tokens=data["cached_input"],
        output_tokens=data["output"],
        reasoning_tokens=data["reasoning"],
        cache_write_tokens=data.get("cache_write", 0),
        cache_write_1h_tokens=data.get("cache_write_1h", 0),
        audio_input_tokens=data.get("audio_input", 0),
        cached_audio_input_tokens=data.get("cached_audio_input", 0),
        audio_output_tokens=data.get("audio_output", 0),
        tool_calls=tuple((data.get("tool_calls") or {}).items()),
        service_tier=data.get("service_tier", "standard"),
    )


@dataclass(frozen=True, slots=True)
class Signature:
    """A receipt's signature over its canonical bytes without this field."""

    alg: str
    """``HS256`` or ``EdDSA``."""
    key_id: str
    sig: str
    """Base64url without padding."""


class Signer(Protocol):
    """Signs receipt bytes. Implementations must be safe to call from the event loop."""

    @property
    def alg(self) -> str:
        """The JOSE algorithm name written into receipts."""
        ...

    @property
    def key_id(self) -> str:
        """Names the key so a verifier can hold several (rotation)."""
        ...

    def sign(self, payload: bytes) -> str:
        """Base64url (no padding) signature of ``payload``."""
        ...


@dataclass(frozen=True, slots=True)
class Receipt:
    """The audit record of one Gate decision. Amounts are exact USD decimal strings."""

    receipt_id: str
    request_id: str
    tenant_id: str
    run_id: str | None
    provider: str | None
    model: str | None
    capability: str
    decision: Decision
    status: ReceiptStatus
    usage: Usage | None
    """``None`` when no usage is known (denied, failed before any output)."""
    usage_source: Literal["reported", "counted", "reservation", "none"]
    """Where ``actual_usd`` came from: the provider's usage, Aegis's own count of what was
    streamed, the full reservation (usage unknown), or nothing was charged."""
    estimated_usd: str
    reserved_usd: str
    actual_usd: str
    overage: bool
    """The charge exceeded the reservation (the estimate was not an upper bound)."""
    late: bool
    """The reservation had expired before the charge was posted."""
    pricing_version: str | None
    pricing_as_of: str | None
    policy_version: str | None
    started_at: str
    finished_at: str
    latency_us: int
    upstream_status: int | None = None
    error: str | None = None
    body_sha256: str | None = None
    chain_id: str = ""
    seq: int = -1
    prev_hash: str = ""
    signature: Signature | None = None
    bound: Bound | None = None
    """What the reservation was computed from (``None`` when nothing was admitted)."""
    record: dict[str, Any] | None = None
    """The price table named by ``pricing_version``, on the first receipt of the trail (since
    the writer started) that names it: ``sha256:`` of its canonical bytes is the version."""
    v: int = RECEIPT_VERSION
    _line: bytes | None = field(default=None, init=False, repr=False, compare=False)
    """The canonical bytes of the sealed receipt, kept by :meth:`ReceiptChain.seal` so a sink
    and the chain do not serialize the same receipt twice."""

    def to_dict(self, *, signed: bool = True) -> dict[str, Any]:
        """Plain data; ``signed=False`` leaves out the signature (the bytes that are signed)."""
        usage = self.usage
        data: dict[str, Any] = {
            "v": self.v,
            "receipt_id": self.receipt_id,
            "request_id": self.request_id,
            "tenant_id": self.tenant_id,
            "run_id": self.run_id,
            "provider": self.provider,
            "model": self.model,
            "capability": self.capability,
            "decision": {
                "allowed": self.decision.allowed,
                "reason": self.decision.reason,
                "budget": self.decision.budget,
            },
            "status": self.status,
            "usage": None if usage is None else usage_to_dict(usage, self.v),
            "usage_source": self.usage_source,
            "estimated_usd": self.estimated_usd,
            "reserved_usd": self.reserved_usd,
            "actual_usd": self.actual_usd,
            "overage": self.overage,
            "late": self.late,
            "pricing_version": self.pricing_version,
            "pricing_as_of": self.pricing_as_of,
            "policy_version": self.policy_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "latency_us": self.latency_us,
            "upstream_status": self.upstream_status,
            "error": self.error,
            "body_sha256": self.body_sha256,
            "chain_id": self.chain_id,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
        }
        if self.v >= 2:
            data["bound"] = None if self.bound is None else self.bound.to_dict()
            data["record"] = self.record
        if signed:
            sig = self.signature
            data["signature"] = (
                None if sig is None else {"alg": sig.alg, "key_id": sig.key_id, "sig": sig.sig}
            )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        """Load a receipt from its plain data (as read back from a sink)."""
        usage = data["usage"]
        sig = data.get("signature")
        bound = data.get("bound")
        fields = {
            k: v for k, v in data.items() if k not in ("decision", "usage", "signature", "bound")
        }
        return cls(
            **fields,
            decision=Decision(**data["decision"]),
            usage=None if usage is None else usage_from_dict(usage),
            signature=None if sig is None else Signature(**sig),
            bound=None if bound is None else Bound.from_dict(bound),
        )

    def signing_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return canonical_bytes(self.to_dict(signed=False))

    def canonical_line(self) -> bytes:
        """The canonical bytes of the signed receipt (one JSON Lines record, without newline)."""
        line = self._line
        return canonical_bytes(self.to_dict()) if line is None else line

    def chain_hash(self) -> str:
        """Hex SHA-256 of the signed receipt's canonical bytes: the next receipt's ``prev_hash``."""
        return hashlib.sha256(self.canonical_line()).hexdigest()


@dataclass(slots=True)
class ReceiptChain:
    """Seals receipts into one chain: assigns ``seq`` and ``prev_hash``, then signs.

    Sealing is synchronous, so receipts are chained in the order :meth:`seal` is called; sinks
    must persist them in the order they are given.
    """

    signer: Signer
    chain_id: str = field(default_factory=lambda: os.urandom(8).hex())
    next_seq: int = 0
    head_hash: str = GENESIS_HASH

    def resume(self, last: Receipt) -> None:
        """Continue the chain that ``last`` ended (after a restart)."""
        self.chain_id = last.chain_id
        self.next_seq = last.seq + 1
        self.head_hash = last.chain_hash()

    def seal(self, receipt: Receipt) -> Receipt:
        """Place ``receipt`` at the head of the chain and sign it."""
        # One dict and two serializations per receipt: this runs on the Gate's hot path.
        data = receipt.to_dict(signed=False)
        data["chain_id"] = self.chain_id
        data["seq"] = self.next_seq
        data["prev_hash"] = self.head_hash
        signer = self.signer
        unsigned = encode_dict(data).encode()
        signature = Signature(signer.alg, signer.key_id, signer.sign(unsigned))
        signed = replace(
            receipt,
            chain_id=self.chain_id,
            seq=self.next_seq,
            prev_hash=self.head_hash,
            signature=signature,
        )
        member = encode_dict(
            {"signature": {"alg": signature.alg, "key_id": signature.key_id, "sig": signature.sig}}
        ).encode()
        # "signature" sorts right before "started_at", so the signed record's canonical bytes
        # are the unsigned ones with that member spliced in (a quote inside a string value is
        # always escaped, so the marker below can only be the top-level key).
        at = unsigned.find(_STARTED_AT_MARK)
        line = unsigned[:at] + b"," + member[1:-1] + unsigned[at:]
        object.__setattr__(signed, "_line", line)
        self.next_seq += 1
        self.head_hash = hashlib.sha256(line).hexdigest()
        return signed


class ReceiptSink(Protocol):
    """Where receipts go.

    Contract: ``write`` records the receipt's place in order before its first suspension point
    (receipts must be stored in call order, which is chain order) and returns once the receipt
    is as durable as the sink promises. It raises :class:`~aegis.core.errors.ReceiptError` when
    it cannot write, so the Gate can fail closed.
    """

    async def write(self, receipt: Receipt) -> None:
        """Persist one sealed receipt."""
        ...

    async def tail(self) -> Receipt | None:
        """The last receipt written, so a restarted writer can continue its chain."""
        ...

    def check(self) -> None:
        """Raise :class:`~aegis.core.errors.ReceiptSinkUnavailable` if writes are known to fail
        (no I/O: the Gate asks before every admission, so no call runs that cannot be
        receipted)."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...


class MemoryReceiptSink:
    """Receipts in a list; for tests and demos."""

    __slots__ = ("receipts",)

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []

    async def write(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)

    async def tail(self) -> Receipt | None:
        return self.receipts[-1] if self.receipts else None

    def check(self) -> None:
        return None

    async def close(self) -> None:
        return None

"""Signed checkpoints: "this chain had ``size`` receipts and its head hashed to ``head_hash``".

A hash chain shows any edit, insertion, deletion or reordering, but not a cut tail: the shorter
trail is still a valid chain. A checkpoint, signed and kept apart from the receipts (ideally
where the writer cannot rewrite it), pins the trail's length and head, so a verifier holding
it sees the missing tail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Final

from aegis.core.receipts import Signature, Signer, canonical_bytes

__all__ = ["CHECKPOINT_KIND", "Checkpoint"]

CHECKPOINT_KIND: Final = "checkpoint"
CHECKPOINT_VERSION: Final = 1
_KEYS: Final = frozenset({"kind", "v", "chain_id", "size", "head_hash", "at", "signature"})


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement of a chain's length and head."""

    chain_id: str
    size: int
    """Number of receipts covered: those with ``seq`` 0 to ``size - 1``."""
    head_hash: str
    """Chain hash (hex SHA-256 of the canonical bytes) of the receipt with ``seq == size - 1``."""
    at: str
    """When the checkpoint was made (UTC, ISO 8601)."""
    signature: Signature | None = None
    v: int = CHECKPOINT_VERSION

    def to_dict(self, *, signed: bool = True) -> dict[str, Any]:
        """Plain data; ``signed=False`` leaves out the signature (the bytes that are signed)."""
        data: dict[str, Any] = {
            "kind": CHECKPOINT_KIND,
            "v": self.v,
            "chain_id": self.chain_id,
            "size": self.size,
            "head_hash": self.head_hash,
            "at": self.at,
        }
        if signed:
            sig = self.signature
            data["signature"] = (
                None if sig is None else {"alg": sig.alg, "key_id": sig.key_id, "sig": sig.sig}
            )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Load and type-check a checkpoint; raises ``ValueError`` naming the bad field."""
        if set(data) != _KEYS:
            missing = sorted(_KEYS - set(data))
            extra = sorted(set(data) - _KEYS)
            raise ValueError(f"checkpoint fields: missing {missing}, unexpected {extra}")
        if data["kind"] != CHECKPOINT_KIND or data["v"] != CHECKPOINT_VERSION:
            raise ValueError(f"not a version {CHECKPOINT_VERSION} checkpoint")
        size = data["size"]
        if type(size) is not int or size < 1:
            raise ValueError("checkpoint size must be a positive integer")
        for name in ("chain_id", "head_hash", "at"):
            if not isinstance(data[name], str):
                raise ValueError(f"checkpoint {name} must be a string")
        sig = data["signature"]
        if (
            not isinstance(sig, dict)
            or set(sig) != {"alg", "key_id", "sig"}
            or not all(isinstance(v, str) for v in sig.values())
        ):
            raise ValueError("checkpoint signature must be {alg, key_id, sig} strings")
        return cls(
            chain_id=data["chain_id"],
            size=size,
            head_hash=data["head_hash"],
            at=data["at"],
            signature=Signature(**sig),
        )

    def signing_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return canonical_bytes(self.to_dict(signed=False))

    def canonical_line(self) -> bytes:
        """The canonical bytes of the signed checkpoint (one JSON Lines record)."""
        return canonical_bytes(self.to_dict())

    def digest(self) -> str:
        """Hex SHA-256 of the signed checkpoint, to quote it elsewhere."""
        return hashlib.sha256(self.canonical_line()).hexdigest()

    def signed_by(self, signer: Signer) -> Checkpoint:
        """This checkpoint with ``signer``'s signature."""
        unsigned = replace(self, signature=None)
        sig = signer.sign(unsigned.signing_bytes())
        return replace(self, signature=Signature(signer.alg, signer.key_id, sig))

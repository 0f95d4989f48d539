"""Receipt signers: HMAC-SHA256 (stdlib) here; Ed25519 lives behind the ``ed25519`` extra."""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["HmacSha256Signer", "b64url"]


def b64url(raw: bytes) -> str:
    """Base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class HmacSha256Signer:
    """HS256: fast and simple; whoever can verify can also forge, so keep the secret close."""

    __slots__ = ("_secret", "key_id")

    def __init__(self, *, key_id: str, secret: bytes | str) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if len(secret) < 16:
            raise ValueError("an HMAC receipt secret needs at least 16 bytes")
        self.key_id = key_id
        self._secret = secret

    @property
    def alg(self) -> str:
        return "HS256"

    def sign(self, payload: bytes) -> str:
        return b64url(hmac.digest(self._secret, payload, hashlib.sha256))

    def verify(self, payload: bytes, sig: str) -> bool:
        """Constant-time check of a signature made with this key."""
        return hmac.compare_digest(self.sign(payload), sig)

    def __repr__(self) -> str:
        return f"HmacSha256Signer(key_id={self.key_id!r}, secret=<redacted>)"

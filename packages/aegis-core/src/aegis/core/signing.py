"""Receipt signers: HMAC-SHA256 (stdlib) here; Ed25519 lives behind the ``ed25519`` extra.

A signer signs; a :class:`SignatureVerifier` checks. ``HmacSha256Signer`` is both (whoever can
verify an HMAC can forge one); Ed25519 splits them so an auditor needs only the public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final, Protocol

__all__ = ["HmacSha256Signer", "SignatureVerifier", "b64url", "b64url_decode"]

_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_IPAD: Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: Final = bytes(x ^ 0x5C for x in range(256))


def b64url(raw: bytes) -> str:
    """Base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ``ValueError`` on anything else."""
    if not text.isascii():
        raise ValueError("base64url text must be ASCII")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(f"not base64url: {exc}") from None


class SignatureVerifier(Protocol):
    """Checks signatures made with one key (a verifier's keyring holds one per ``key_id``)."""

    @property
    def alg(self) -> str:
        """The JOSE algorithm name the signatures must carry (``HS256``, ``EdDSA``)."""
        ...

    @property
    def key_id(self) -> str:
        """The key's name, as written into every signature made with it."""
        ...

    def verify(self, payload: bytes, sig: str) -> bool:
        """Whether ``sig`` (base64url) is this key's signature of ``payload``."""
        ...


class HmacSha256Signer:
    """HS256: fast and simple; whoever can verify can also forge, so keep the secret close."""

    __slots__ = ("_inner", "_outer", "_secret", "key_id")

    def __init__(self, *, key_id: str, secret: bytes | str) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        if len(secret) < 16:
            raise ValueError("an HMAC receipt secret needs at least 16 bytes")
        self.key_id = key_id
        self._secret = secret
        # RFC 2104 with the two keyed SHA-256 states computed once: every receipt is signed
        # and verified from copies of them (hmac.digest would redo the key schedule per call).
        block = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        block = block.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    @property
    def alg(self) -> str:
        return "HS256"

    def _mac(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def sign(self, payload: bytes) -> str:
        return b64url(self._mac(payload))

    def verify(self, payload: bytes, sig: str) -> bool:
        """Constant-time check of a signature made with this key."""
        mac = binascii.b2a_base64(self._mac(payload), newline=False)
        return hmac.compare_digest(mac.translate(_URLSAFE).rstrip(b"="), sig.encode())

    def __repr__(self) -> str:
        return f"HmacSha256Signer(key_id={self.key_id!r}, secret=<redacted>)"

    def __reduce__(self) -> tuple[object, tuple[str, bytes]]:
        # Hash states do not pickle; the verifier's worker processes rebuild them.
        return (_hmac_signer, (self.key_id, self._secret))


def _hmac_signer(key_id: str, secret: bytes) -> HmacSha256Signer:
    return HmacSha256Signer(key_id=key_id, secret=secret)

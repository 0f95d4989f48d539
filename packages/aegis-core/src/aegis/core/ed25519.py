"""Ed25519 receipt and checkpoint signatures (``EdDSA``), behind the extra
``aegis-runtime-core[ed25519]``.

The writer holds an :class:`Ed25519Signer`; an auditor holds only an :class:`Ed25519Verifier`
made from the 32-byte public key, and can check every signature without being able to forge
one. ``cryptography`` is imported only when one of these classes is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aegis.core.errors import ConfigError
from aegis.core.signing import b64url, b64url_decode

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["Ed25519Signer", "Ed25519Verifier"]


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - the extra is installed in this workspace
        raise ConfigError(
            "Ed25519 receipts need the 'cryptography' package: install aegis-runtime-core[ed25519]"
        ) from None
    return ed25519


def _serialization() -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization


class Ed25519Verifier:
    """Verifies ``EdDSA`` signatures with a public key only."""

    __slots__ = ("_key", "_raw", "key_id")

    def __init__(self, *, key_id: str, public_key: bytes | str) -> None:
        """``public_key``: the raw 32 bytes, their base64url text, or a PEM public key."""
        raw = _public_raw(public_key)
        self.key_id = key_id
        self._raw = raw
        self._key: Ed25519PublicKey = _ed25519().Ed25519PublicKey.from_public_bytes(raw)

    @property
    def alg(self) -> str:
        return "EdDSA"

    def public_key_b64(self) -> str:
        """The raw public key as base64url (what ``AEGIS_RECEIPT_KEYS`` takes)."""
        return b64url(self._raw)

    def verify(self, payload: bytes, sig: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(b64url_decode(sig), payload)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __reduce__(self) -> tuple[Any, ...]:
        # The public key object itself does not pickle; the verifier's workers rebuild it.
        return (_verifier, (self.key_id, self._raw))

    def __repr__(self) -> str:
        return f"Ed25519Verifier(key_id={self.key_id!r}, public_key={self.public_key_b64()!r})"


def _verifier(key_id: str, raw: bytes) -> Ed25519Verifier:
    return Ed25519Verifier(key_id=key_id, public_key=raw)


def _public_raw(public_key: bytes | str) -> bytes:
    if isinstance(public_key, str):
        text = public_key.strip()
        if text.startswith("-----BEGIN"):
            public_key = text.encode()
        else:
            try:
                public_key = b64url_decode(text)
            except ValueError as exc:
                raise ConfigError(f"Ed25519 public key: {exc}") from None
    if public_key.lstrip().startswith(b"-----BEGIN"):
        ser = _serialization()
        loaded = ser.load_pem_public_key(public_key)
        if not isinstance(loaded, _ed25519().Ed25519PublicKey):
            raise ConfigError("the PEM public key is not an Ed25519 key")
        raw: bytes = loaded.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        return raw
    if len(public_key) != 32:
        raise ConfigError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return public_key


class Ed25519Signer:
    """Signs with an Ed25519 private key (``EdDSA``); hand auditors :meth:`verifier` only."""

    __slots__ = ("_key", "key_id")

    def __init__(self, *, key_id: str, private_key: bytes | str) -> None:
        """``private_key``: the raw 32-byte seed, its base64url text, or an unencrypted PEM."""
        ed = _ed25519()
        key: Ed25519PrivateKey
        if isinstance(private_key, str) and not private_key.lstrip().startswith("-----BEGIN"):
            try:
                private_key = b64url_decode(private_key.strip())
            except ValueError as exc:
                raise ConfigError(f"Ed25519 private key: {exc}") from None
        if isinstance(private_key, str):
            private_key = private_key.encode()
        if private_key.lstrip().startswith(b"-----BEGIN"):
            loaded = _serialization().load_pem_private_key(private_key, password=None)
            if not isinstance(loaded, ed.Ed25519PrivateKey):
                raise ConfigError("the PEM private key is not an Ed25519 key")
            key = loaded
        elif len(private_key) == 32:
            key = ed.Ed25519PrivateKey.from_private_bytes(private_key)
        else:
            raise ConfigError(f"an Ed25519 private key has 32 bytes, got {len(private_key)}")
        self.key_id = key_id
        self._key = key

    @classmethod
    def generate(cls, *, key_id: str) -> Ed25519Signer:
        """A signer with a fresh random key."""
        ser = _serialization()
        seed = (
            _ed25519()
            .Ed25519PrivateKey.generate()
            .private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        )
        return cls(key_id=key_id, private_key=seed)

    @property
    def alg(self) -> str:
        return "EdDSA"

    def sign(self, payload: bytes) -> str:
        return b64url(self._key.sign(payload))

    def public_key_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        ser = _serialization()
        raw: bytes = self._key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        return raw

    def public_key_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        ser = _serialization()
        pem: bytes = self._key.public_key().public_bytes(
            ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()

    def verifier(self) -> Ed25519Verifier:
        """The public half, for auditors."""
        return Ed25519Verifier(key_id=self.key_id, public_key=self.public_key_bytes())

    def verify(self, payload: bytes, sig: str) -> bool:
        """Check a signature with this key's public half."""
        return self.verifier().verify(payload, sig)

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r}, private_key=<redacted>)"

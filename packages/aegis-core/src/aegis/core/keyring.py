"""The verifier's keys, by ``key_id``, loaded from the environment or a key file.

Secrets never come from the command line (it shows up in ``ps`` and shell history). Two forms:

``AEGIS_RECEIPT_KEYS``
    Comma-separated ``KEY_ID:SOURCE`` entries, where SOURCE is ``env:VAR`` (an HMAC secret in
    environment variable VAR), ``file:PATH`` (an HMAC secret file, or a PEM Ed25519 public
    key), ``ed25519:BASE64URL`` (a raw Ed25519 public key; public, so inline is fine) or
    ``ed25519-file:PATH``. An HMAC secret is the UTF-8 text (a file loses one trailing
    newline) unless it starts with ``base64url:``, then it is the decoded bytes.
A key file (``--key-file``)
    JSON ``{"keys": [{"key_id": ..., "alg": "HS256", "secret_env" | "secret_file" |
    "secret": ...}, {"key_id": ..., "alg": "EdDSA", "public_key": BASE64URL-or-PEM}]}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from aegis.core.errors import ConfigError
from aegis.core.signing import HmacSha256Signer, SignatureVerifier, b64url_decode

__all__ = ["KEYS_ENV", "Keyring"]

KEYS_ENV: Final = "AEGIS_RECEIPT_KEYS"


class Keyring:
    """Verification keys by ``key_id``; holding several is how keys rotate."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[SignatureVerifier] = ()) -> None:
        self._keys: dict[str, SignatureVerifier] = {}
        for key in keys:
            self.add(key)

    def add(self, key: SignatureVerifier) -> None:
        """Add one key; a second key with the same ``key_id`` is a configuration error."""
        if key.key_id in self._keys:
            raise ConfigError(f"two verification keys have key_id {key.key_id!r}")
        self._keys[key.key_id] = key

    def get(self, key_id: str) -> SignatureVerifier | None:
        """The key named ``key_id``, if held."""
        return self._keys.get(key_id)

    def key_ids(self) -> list[str]:
        """The names of the keys held, sorted."""
        return sorted(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[SignatureVerifier]:
        return iter(self._keys.values())

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids()!r})"

    @classmethod
    def from_spec(cls, spec: str, environ: Mapping[str, str] | None = None) -> Keyring:
        """Parse an ``AEGIS_RECEIPT_KEYS`` value (see the module docstring)."""
        env = os.environ if environ is None else environ
        ring = cls()
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            key_id, sep, source = entry.partition(":")
            kind, sep2, arg = source.partition(":")
            if not key_id or not sep or not sep2 or not arg:
                raise ConfigError(
                    f"{KEYS_ENV}: entry for key {key_id!r} must be KEY_ID:KIND:VALUE"
                    " with KIND env, file, ed25519 or ed25519-file"
                )
            ring.add(_from_source(key_id, kind, arg, env))
        return ring

    @classmethod
    def from_key_file(cls, path: str | Path, environ: Mapping[str, str] | None = None) -> Keyring:
        """Load a JSON key file (see the module docstring)."""
        env = os.environ if environ is None else environ
        try:
            doc = json.loads(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"key file {path}: cannot be read as JSON ({type(exc).__name__})"
            ) from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise ConfigError(f'key file {path}: expected {{"keys": [...]}}')
        ring = cls()
        for number, entry in enumerate(keys, 1):
            ring.add(_from_entry(f"key file {path}: key {number}", entry, env))
        return ring

    def merged(self, other: Keyring) -> Keyring:
        """A keyring holding both rings' keys."""
        return Keyring([*self, *other])


def _hmac_secret(text: bytes, where: str) -> bytes:
    if text.startswith(b"base64url:"):
        try:
            return b64url_decode(text[len(b"base64url:") :].decode().strip())
        except ValueError:
            raise ConfigError(f"{where}: the base64url secret does not decode") from None
    return text


def _hmac(key_id: str, secret: bytes, where: str) -> HmacSha256Signer:
    try:
        return HmacSha256Signer(key_id=key_id, secret=_hmac_secret(secret, where))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _ed25519(key_id: str, public_key: bytes | str) -> SignatureVerifier:
    from aegis.core.ed25519 import Ed25519Verifier

    return Ed25519Verifier(key_id=key_id, public_key=public_key)


def _read_secret_file(path: str, where: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({exc.strerror})") from None
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith(b"\n") else data


def _from_source(key_id: str, kind: str, arg: str, env: Mapping[str, str]) -> SignatureVerifier:
    where = f"{KEYS_ENV}: key {key_id!r}"
    if kind == "env":
        value = env.get(arg)
        if value is None:
            raise ConfigError(f"{where}: environment variable {arg} is not set")
        return _hmac(key_id, value.encode(), where)
    if kind == "file":
        data = _read_secret_file(arg, where)
        if data.lstrip().startswith(b"-----BEGIN PUBLIC KEY"):
            return _ed25519(key_id, data)
        return _hmac(key_id, data, where)
    if kind == "ed25519":
        return _ed25519(key_id, arg)
    if kind == "ed25519-file":
        return _ed25519(key_id, _read_secret_file(arg, where).decode())
    raise ConfigError(f"{where}: unknown key source {kind!r} (env, file, ed25519, ed25519-file)")


def _from_entry(where: str, entry: Any, env: Mapping[str, str]) -> SignatureVerifier:
    if not isinstance(entry, dict) or not isinstance(entry.get("key_id"), str):
        raise ConfigError(f"{where}: needs a string key_id")
    key_id: str = entry["key_id"]
    alg = entry.get("alg", "HS256")
    if alg == "EdDSA":
        public = entry.get("public_key")
        if not isinstance(public, str):
            raise ConfigError(f"{where}: an EdDSA key needs public_key")
        return _ed25519(key_id, public)
    if alg != "HS256":
        raise ConfigError(f"{where}: alg must be HS256 or EdDSA, not {alg!r}")
    if isinstance(entry.get("secret_env"), str):
        return _from_source(key_id, "env", entry["secret_env"], env)
    if isinstance(entry.get("secret_file"), str):
        return _hmac(key_id, _read_secret_file(entry["secret_file"], where), where)
    if isinstance(entry.get("secret"), str):
        return _hmac(key_id, entry["secret"].encode(), where)
    raise ConfigError(f"{where}: an HS256 key needs secret_env, secret_file or secret")

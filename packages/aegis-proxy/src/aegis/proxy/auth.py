"""Virtual API keys: who is calling, as which tenant.

Keys are random 256-bit secrets shown once; the config stores only their SHA-256. A presented
key is hashed, then looked up by its hash: whatever the lookup's timing reveals is about a
SHA-256 digest, which says nothing about any key, so the comparison is constant-time where it
matters (the same reason Stripe-style key stores index by hash).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Final

from aiohttp import web

from aegis.proxy.config import Settings
from aegis.proxy.errors import Unauthorized

__all__ = ["KeyIndex", "hash_key", "new_key"]

KEY_PREFIX: Final = "aegis-sk-"


def new_key() -> str:
    """A fresh virtual key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The form a key is stored in: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class KeyIndex:
    """Maps presented keys to tenants."""

    __slots__ = ("_by_hash", "trust_tenant_header")

    def __init__(self, by_hash: Mapping[str, str], *, trust_tenant_header: bool = False) -> None:
        self._by_hash = dict(by_hash)
        self.trust_tenant_header = trust_tenant_header

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyIndex:
        index = cls({})
        index.apply(settings)
        return index

    def apply(self, settings: Settings) -> None:
        """Take the keys of ``settings`` (hot reload): one assignment each, so a request sees
        either the old keys or the new ones."""
        self._by_hash = {
            h: t.tenant_id for t in settings.tenants.values() for h in t.api_key_hashes
        }
        self.trust_tenant_header = settings.auth.trust_tenant_header

    def tenant_for_key(self, key: str) -> str | None:
        return self._by_hash.get(hash_key(key))

    def authenticate(self, request: web.Request) -> str:
        """The calling tenant, or :class:`Unauthorized`."""
        if self.trust_tenant_header:
            tenant = request.headers.get("x-tenant-id")
            if tenant:
                return tenant
        key = _presented_key(request)
        if not key:
            raise Unauthorized(
                "missing API key: send it as 'Authorization: Bearer <key>', 'x-api-key' or "
                "'x-goog-api-key'",
                code="missing_api_key",
            )
        tenant = self.tenant_for_key(key)
        if tenant is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return tenant


def _presented_key(request: web.Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    # Never from the query string (?key=): URLs end up in access logs.
    return request.headers.get("x-goog-api-key") or request.headers.get("x-api-key") or None

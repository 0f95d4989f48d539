"""Virtual API keys: who is calling, as which tenant.

Keys are random 256-bit secrets shown once; the config and the control-plane store keep only
their SHA-256. A presented key is hashed, then looked up by its hash: whatever the lookup's
timing reveals is about a SHA-256 digest, which says nothing about any key, so the comparison
is constant-time where it matters (the same reason Stripe-style key stores index by hash).

:func:`presented_key` and :func:`aegis.core.hash_key` are the only places a key is read from a
request and hashed, for tenant, admin and metrics keys alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from aegis.core import KEY_PREFIX, hash_key, new_key
from aegis.proxy.config import Settings
from aegis.proxy.control_plane import ControlPlane, Identity
from aegis.proxy.errors import Unauthorized

__all__ = ["KEY_PREFIX", "Identity", "KeyIndex", "hash_key", "new_key", "presented_key"]


def presented_key(request: web.Request) -> str | None:
    """The key in ``Authorization: Bearer``, ``x-goog-api-key`` or ``x-api-key`` (Anthropic's
    clients; never the query string: URLs end up in access logs)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return request.headers.get("x-goog-api-key") or request.headers.get("x-api-key") or None


class KeyIndex:
    """Maps presented keys to tenants: the config file's keys, then the store's."""

    __slots__ = ("_by_hash", "plane", "trust_tenant_header")

    def __init__(
        self,
        by_hash: Mapping[str, str],
        *,
        trust_tenant_header: bool = False,
        plane: ControlPlane | None = None,
    ) -> None:
        self._by_hash = dict(by_hash)
        self.trust_tenant_header = trust_tenant_header
        self.plane = plane

    @classmethod
    def from_settings(cls, settings: Settings, plane: ControlPlane | None = None) -> KeyIndex:
        index = cls({}, plane=plane)
        index.apply(settings)
        return index

    def apply(self, settings: Settings) -> None:
        """Take the keys of ``settings`` (hot reload): one assignment each, so a request sees
        either the old keys or the new ones."""
        self._by_hash = {
            h: t.tenant_id for t in settings.tenants.values() for h in t.api_key_hashes
        }
        self.trust_tenant_header = settings.auth.trust_tenant_header

    def file_tenant_for_hash(self, key_hash: str) -> str | None:
        """The config-file tenant owning this key hash."""
        return self._by_hash.get(key_hash)

    async def identify(self, key: str) -> Identity | None:
        """Who holds ``key`` (a valid file or store key), else ``None``."""
        digest = hash_key(key)
        tenant = self._by_hash.get(digest)
        if tenant is not None:
            return Identity(tenant)
        if self.plane is None:
            return None
        record = await self.plane.key(digest)
        if record is None:
            return None
        return Identity(record.tenant_id, record.key_scope())

    async def authenticate(self, request: web.Request) -> Identity:
        """The caller, or :class:`Unauthorized` (the store being down raises
        :class:`~aegis.core.StoreUnavailable`: 503, never a pass)."""
        if self.trust_tenant_header:
            tenant = request.headers.get("x-tenant-id")
            if tenant:
                return Identity(tenant)
        key = presented_key(request)
        if not key:
            raise Unauthorized(
                "missing API key: send it as 'Authorization: Bearer <key>', 'x-api-key' or "
                "'x-goog-api-key'",
                code="missing_api_key",
            )
        identity = await self.identify(key)
        if identity is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        return identity

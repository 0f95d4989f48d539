"""Providers as the proxy reaches them: one pooled aiohttp session each, URL from config only."""

from __future__ import annotations

import os
from dataclasses import dataclass

import aiohttp

from aegis.proxy.config import ProviderSettings, ServerSettings

__all__ = ["Upstream", "open_upstream"]


@dataclass(slots=True)
class Upstream:
    """A configured provider with its connection pool."""

    name: str
    type: str
    base_url: str
    session: aiohttp.ClientSession
    auth_headers: dict[str, str]
    """Sent on every request; never logged, never echoed."""

    def url(self, path: str) -> str:
        # The path is built by the proxy from its own route, never from the request body.
        return self.base_url + path

    async def close(self) -> None:
        await self.session.close()


def open_upstream(provider: ProviderSettings, server: ServerSettings) -> Upstream:
    """Create a provider's session (call inside a running loop)."""
    key = os.environ.get(provider.api_key_env, "")
    if provider.type == "openai":
        headers = {"Authorization": f"Bearer {key}"} if key else {}
    else:
        headers = {"x-goog-api-key": key} if key else {}
    timeout = aiohttp.ClientTimeout(
        total=None, connect=server.connect_timeout_s, sock_read=server.read_timeout_s
    )
    session = aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
        raise_for_status=False,
    )
    return Upstream(provider.name, provider.type, provider.base_url, session, headers)

"""Providers as the proxy reaches them: one pooled aiohttp session each, URL from config only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

import aiohttp
from yarl import URL

from aegis.proxy.config import ProviderSettings, ServerSettings

__all__ = ["ANTHROPIC_VERSION", "Upstream", "open_upstream"]

_URL_CACHE_SIZE: Final = 256
ANTHROPIC_VERSION: Final = "2023-06-01"
"""The ``anthropic-version`` sent to Anthropic when the client named none."""


@dataclass(slots=True)
class Upstream:
    """A configured provider with its connection pool."""

    name: str
    type: str
    base_url: str
    session: aiohttp.ClientSession
    auth_headers: dict[str, str]
    """Sent on every request; never logged, never echoed."""
    abandoned_read_s: float
    abandoned_read_bytes: int
    """How long, and how far, a stream the client left is read on for its usage (from
    ``[server]``, as the proxy started)."""
    json_headers: dict[str, str] = field(init=False)
    """``auth_headers`` plus the JSON content type: what every governed call sends."""
    _urls: dict[str, URL] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.json_headers = {**self.auth_headers, "Content-Type": "application/json"}

    def url(self, path: str) -> URL:
        """The URL of ``path`` on this provider, parsed once (bounded cache)."""
        # The path is built by the proxy from its own route, never from the request body.
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[path] = URL(self.base_url + path)
        return url

    async def close(self) -> None:
        await self.session.close()


def open_upstream(provider: ProviderSettings, server: ServerSettings) -> Upstream:
    """Create a provider's session (call inside a running loop)."""
    key = os.environ.get(provider.api_key_env, "")
    if provider.type == "openai":
        headers = {"Authorization": f"Bearer {key}"} if key else {}
    elif provider.type == "anthropic":
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
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
    return Upstream(
        provider.name,
        provider.type,
        provider.base_url,
        session,
        headers,
        abandoned_read_s=server.abandoned_read_s,
        abandoned_read_bytes=server.abandoned_read_bytes,
    )

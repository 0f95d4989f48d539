"""The proxy under test: settings for the fake upstreams, and the served app with a client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from aegis.proxy import Settings, hash_key, parse_settings
from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream

KEY = "aegis-sk-test-key-acme-0123456789"
OTHER_KEY = "aegis-sk-test-key-beta-0123456789"
UPSTREAM_SECRET = "sk-upstream-secret-canary"


def make_settings(
    tmp_path: Path,
    upstream: FakeUpstream,
    backup: FakeUpstream | None = None,
    gemini: FakeGeminiServer | None = None,
    receipts: str = "memory",
    **acme: Any,
) -> Settings:
    """Settings for the proxy in front of the fakes; ``acme`` holds the policy of tenant acme."""
    providers: dict[str, Any] = {
        "openai": {"type": "openai", "base_url": upstream.base_url, "api_key_env": "FAKE_KEY"},
    }
    if backup is not None:
        providers["backup"] = {
            "type": "openai",
            "base_url": backup.base_url,
            "api_key_env": "FAKE_KEY",
        }
    if gemini is not None:
        providers["gemini"] = {"type": "gemini", "base_url": gemini.url, "api_key_env": "FAKE_KEY"}
    return parse_settings(
        {
            "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.db")},
            "receipts": {"sink": receipts, "path": str(tmp_path / "receipts")},
            "providers": providers,
            "tenants": {
                "acme": {"api_keys": [hash_key(KEY)], **acme},
                "beta": {"api_keys": [hash_key(OTHER_KEY)]},
            },
        }
    )


class Proxy:
    """The proxy app served on a free port, with a client for it."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.app: web.Application = server.app
        self.clients: list[AsyncOpenAI] = []

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def client(self, key: str = KEY, **kwargs: Any) -> AsyncOpenAI:
        kwargs.setdefault("max_retries", 0)
        client = AsyncOpenAI(base_url=self.url + "/v1", api_key=key, **kwargs)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.server.close()

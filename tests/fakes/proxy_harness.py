"""The proxy under test: settings for the fake upstreams, and the served app with a client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from aegis.proxy import Settings, hash_key, parse_settings
from fakes.anthropic_upstream import FakeAnthropicServer
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
    anthropic: FakeAnthropicServer | None = None,
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
    if anthropic is not None:
        providers["anthropic"] = {
            "type": "anthropic",
            "base_url": anthropic.url,
            "api_key_env": "FAKE_KEY",
        }
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


def readme_commands(readme: Path, marker: str) -> list[str]:
    """The ``curl`` commands of the shell block between ``<!-- MARKER`` and
    ``<!-- /MARKER -->`` in ``readme`` (continued lines joined)."""
    block = readme.read_text().split(f"<!-- {marker}")[1].split(f"<!-- /{marker} -->")[0]
    body = block.split("```sh\n")[1].split("```")[0]
    return [c for c in body.replace("\\\n", " ").splitlines() if c.startswith("curl ")]


async def run_json_command(command: str, env: Mapping[str, str]) -> Any:
    """Run a shell command (a README's curl) and parse what it printed as JSON."""
    process = await asyncio.create_subprocess_shell(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0, command
    return json.loads(stdout)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProxyProcess:
    """The real ``aegis-proxy serve`` in a subprocess, its output in ``log``."""

    def __init__(
        self,
        config: Path | None,
        port: int,
        env: Mapping[str, str],
        log: Path,
        *,
        cwd: Path | None = None,
    ) -> None:
        """``config=None``: no config file, the proxy runs on its environment (in ``cwd``)."""
        self.config = config
        self.port = port
        self.env = {**os.environ, **env}
        self.log = log
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> ProxyProcess:
        """Start it and wait until ``/readyz`` answers 200 (fails with its log if it dies)."""
        with self.log.open("ab") as out:
            where = ["--config", str(self.config)] if self.config else ["--port", str(self.port)]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aegis.proxy", "serve", *where],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return self
                if self.process.poll() is not None:
                    raise AssertionError(f"the proxy exited:\n{self.log.read_text()}")
                await asyncio.sleep(0.05)
        raise AssertionError(f"the proxy never became ready:\n{self.log.read_text()}")

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Kill it if it still runs (test teardown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

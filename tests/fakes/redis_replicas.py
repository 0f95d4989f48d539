"""Real ``aegis-proxy`` replicas (subprocesses) configured with the Redis ledger."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from aegis.proxy import hash_key, new_key
from fakes.openai_upstream import FakeUpstream

__all__ = ["KEY", "PROXY", "Replica", "StartReplicas", "free_port", "wait_ready", "write_config"]

KEY = new_key()
PROXY = [sys.executable, "-m", "aegis.proxy"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One ``aegis-proxy serve`` process with its own folder: config, epoch file, receipts."""

    def __init__(self, home: Path, process: subprocess.Popen[bytes], port: int) -> None:
        self.home = home
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.config = home / "aegis.toml"

    @property
    def receipts_dir(self) -> Path:
        return self.home / "receipts"

    def receipts(self) -> list[dict[str, Any]]:
        """Every receipt in this replica's file trail, unverified."""
        found = []
        for path in sorted(self.receipts_dir.glob("*.jsonl")):
            if path.name.endswith(".checkpoints.jsonl"):
                continue
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if "seq" in record:
                    found.append(record)
        return found

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_config(
    home: Path, port: int, redis_url: str, upstream: FakeUpstream, tenant: str
) -> None:
    (home / "aegis.toml").write_text(
        f"[server]\nport = {port}\ndrain_timeout_s = 5\n"
        f'[ledger]\nbackend = "redis"\nurl = "{redis_url}"\nepoch_path = "redis-epoch"\n'
        f'[receipts]\nsink = "file"\npath = "receipts"\nkey_id = "replica"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n{tenant}'
    )


def _read(log: Path) -> str:
    return log.read_text()


async def wait_ready(replica: Replica, log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(replica.url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert replica.process.poll() is None, _read(log)
            await asyncio.sleep(0.05)
    raise AssertionError(f"replica never became ready:\n{_read(log)}")


StartReplicas = Callable[..., Awaitable[list[Replica]]]

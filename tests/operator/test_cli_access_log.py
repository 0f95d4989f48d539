"""``aegis-proxy serve`` as a real process: access lines are bare JSON on stdout (other logs
on stderr), and a line reaches stdout even when no further request follows it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import aiohttp
from fakes.openai_upstream import FakeUpstream

from aegis.proxy import hash_key

KEY = "aegis-sk-cli-access-log-key-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_access_lines_are_bare_json_on_stdout(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    port = _free_port()
    config = tmp_path / "aegis.toml"
    config.write_text(
        f"[server]\nport = {port}\ndrain_timeout_s = 5\n"
        f'[ledger]\npath = "ledger.db"\n'
        f'[receipts]\nsink = "file"\npath = "receipts"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{openai_upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )
    env = {
        **os.environ,
        "FAKE_KEY": "sk-upstream",
        "AEGIS_RECEIPT_SECRET": "r" * 32,
        "AEGIS_LOG_LEVEL": "INFO",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aegis.proxy",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            receipt_ids = []
            # Back to back: the second line is written inside the first one's flush interval,
            # so only the proxy's once-a-second flush can bring it out while it idles.
            for request_id in ("cli-1", "cli-2"):
                headers = {"Authorization": f"Bearer {KEY}", "x-request-id": request_id}
                async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                    assert r.status == 200
                    receipt_ids.append(r.headers["x-aegis-receipt-id"])
        assert process.stdout is not None
        lines: list[bytes] = []
        while len(lines) < 2:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
            assert line.startswith(b"{"), line  # nothing else goes to stdout
            lines.append(line)
        for line, request_id, receipt_id in zip(
            lines, ("cli-1", "cli-2"), receipt_ids, strict=True
        ):
            record = json.loads(line)
            assert record["request_id"] == request_id
            assert record["receipt_id"] == receipt_id
            assert record["tenant"] == "acme"
            assert record["status"] == 200
            assert KEY not in line.decode()
    finally:
        process.terminate()
        await process.wait()

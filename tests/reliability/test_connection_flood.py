"""A flood of slow, unauthenticated connections (slowloris) against a proxy whose descriptor
limit is 1,024: legitimate calls are still served, the flood's connections are refused or
closed on a deadline, and the log stays small."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import free_port
from openai import AsyncOpenAI

from aegis.proxy import hash_key, new_key

KEY = new_key()
ATTACKER = "127.0.0.2"  # another loopback address: another client, as a real attacker is


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


async def _slow_connection(
    port: int, opened: list[asyncio.StreamWriter], dropped: list[int]
) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    except OSError:
        dropped.append(1)
        return
    opened.append(writer)
    try:
        # Headers that never end, a byte at a time.
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        for _ in range(60):
            await asyncio.sleep(0.25)
            writer.write(b"X")
            await writer.drain()
            if reader.at_eof():
                dropped.append(1)
                return
    except (OSError, ConnectionError):
        dropped.append(1)


async def test_a_slow_connection_flood_leaves_legitimate_calls_served(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 4096, "the test needs descriptors for 1,100 client connections"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    port = free_port()
    config = tmp_path / "aegis.toml"
    config.write_text(
        f"[server]\nport = {port}\nheader_timeout_s = 2\nmax_connections_per_client = 256\n"
        f'[ledger]\npath = "ledger.db"\n'
        f'[receipts]\nsink = "file"\npath = "receipts"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{openai_upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )
    log = tmp_path / "proxy.log"
    env = {**os.environ, "FAKE_KEY": "sk-upstream", "AEGIS_RECEIPT_SECRET": "f" * 32}
    with log.open("wb") as out:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "aegis.proxy", "serve", "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_descriptors,
        )
    client = AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=10
    )
    opened: list[asyncio.StreamWriter] = []
    dropped: list[int] = []
    try:
        for _ in range(200):
            try:
                await client.models.list()
                break
            except Exception:
                await asyncio.sleep(0.05)
        flood = [asyncio.create_task(_slow_connection(port, opened, dropped)) for _ in range(1100)]
        await asyncio.sleep(1.0)  # the flood is in place
        answers = []
        for i in range(4):
            completion = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"still here {i}"}],
                max_tokens=8,
            )
            answers.append(completion.choices[0].message.content)
        assert all(answers)
        # Over the bound they were refused at once; the rest close on the header deadline.
        for _ in range(100):
            if len(dropped) >= 1100:
                break
            await asyncio.sleep(0.1)
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
    finally:
        await client.close()
        for writer in opened:
            writer.close()
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
    assert proxy.returncode == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "Too many open files" not in text
    assert "refused" in text  # the flood met the per-client bound, and it was said
    assert log.stat().st_size < 200_000, "a flood must not fill the disk with log lines"
    assert len(dropped) == 1100  # every slow connection was refused or timed out

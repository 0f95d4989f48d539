"""The real `aegis-proxy` program: a subprocess serving, reloading, draining; its CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.proxy_harness import ProxyProcess, free_port, readme_commands, run_json_command

from aegis.proxy import hash_key, new_key

ROOT = Path(__file__).resolve().parents[2]
PROXY = [sys.executable, "-m", "aegis.proxy"]


def write_config(
    path: Path, upstream: FakeUpstream, port: int, keys: dict[str, str], extra: str = ""
) -> None:
    tenants = "".join(
        f'[tenants.{tenant}]\napi_keys = ["{hash_key(key)}"]\n' for tenant, key in keys.items()
    )
    path.write_text(
        f"[server]\nport = {port}\ndrain_timeout_s = 10\n"
        f'[ledger]\npath = "ledger.db"\n'
        f'[receipts]\nsink = "file"\npath = "receipts"\nkey_id = "test-key"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{upstream.base_url}"\n'
        f'api_key_env = "FAKE_KEY"\n'
        f"{tenants}{extra}"
    )


@pytest.fixture
async def served(tmp_path: Path, openai_upstream: FakeUpstream) -> AsyncIterator[ProxyProcess]:
    port = free_port()
    config = tmp_path / "aegis.toml"
    write_config(config, openai_upstream, port, {"acme": KEY})
    env = {"FAKE_KEY": "sk-upstream", "AEGIS_RECEIPT_SECRET": "r" * 32}
    proxy = ProxyProcess(config, port, env, tmp_path / "proxy.log")
    try:
        yield await proxy.start()
    finally:
        proxy.stop()


KEY = new_key()


def readme_curl_commands() -> list[str]:
    return readme_commands(ROOT / "packages/aegis-proxy/README.md", "readme-curl")


async def test_the_readme_curl_examples_work(
    served: ProxyProcess, openai_upstream: FakeUpstream
) -> None:
    commands = readme_curl_commands()
    assert len(commands) == 2
    outputs = []
    for command in commands:
        command = command.replace("localhost:8787", served.url.removeprefix("http://"))
        outputs.append(await run_json_command(command, {"AEGIS_KEY": KEY}))
    completion, models = outputs
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"]
    assert "gpt-4o-mini" in {m["id"] for m in models["data"]}
    assert openai_upstream.fake.requests[0].headers["Authorization"] == "Bearer sk-upstream"


async def test_sighup_and_file_changes_reload_tenants(
    served: ProxyProcess, openai_upstream: FakeUpstream
) -> None:
    new = new_key()
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
    }

    async def status(key: str) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                served.url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ) as response,
        ):
            return response.status

    assert await status(new) == 401
    assert served.config is not None
    write_config(served.config, openai_upstream, served.port, {"acme": KEY, "beta": new})
    served.signal(signal.SIGHUP)
    for _ in range(100):
        if await status(new) == 200:
            break
        await asyncio.sleep(0.05)
    assert await status(new) == 200
    # An invalid file leaves the running config in place.
    served.config.write_text(served.config.read_text() + "\n[tenants.broken]\nbudgets = 3\n")
    served.signal(signal.SIGHUP)
    await asyncio.sleep(0.3)
    assert await status(new) == 200
    assert await status(KEY) == 200


async def test_sigterm_lets_a_stream_in_flight_finish_and_flushes_its_receipt(
    served: ProxyProcess, openai_upstream: FakeUpstream, tmp_path: Path
) -> None:
    openai_upstream.fake.enqueue(Reply(text=" ".join(["tick"] * 20), chunk_delay_s=0.05))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            served.url + "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "count slowly"}],
            },
            headers={"Authorization": f"Bearer {KEY}"},
        ) as response,
    ):
        assert response.status == 200
        receipt_id = response.headers["x-aegis-receipt-id"]
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        served.signal(signal.SIGTERM)
        rest = await response.read()
    assert rest.endswith(b"data: [DONE]\n\n")
    assert rest.count(b'"content":"tick') + first.count(b'"content":"tick') == 20
    assert served.wait(timeout=20) == 0
    trail = "".join(p.read_text() for p in sorted((tmp_path / "receipts").glob("*.jsonl")))
    receipts = [json.loads(line) for line in trail.splitlines() if line.startswith("{")]
    ours = [r for r in receipts if r.get("receipt_id") == receipt_id]
    assert len(ours) == 1
    assert ours[0]["status"] == "ok"
    verify = subprocess.run(
        ["aegis-receipts", "verify", str(tmp_path / "receipts")],
        env={**os.environ, "AEGIS_RECEIPT_KEYS": "test-key:env:SECRET", "SECRET": "r" * 32},
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_check_config_accepts_the_example_and_lists_every_problem(tmp_path: Path) -> None:
    ok = subprocess.run(
        [*PROXY, "check-config", str(ROOT / "demo/aegis.toml")], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[server]\nport = "eighty"\n'
        '[providers.x]\ntype = "bedrock"\n'
        '[tenants.acme]\napi_keys = ["plaintext-key"]\n'
        "[tenants.acme.budgets]\nper_run_usd = -1\n"
    )
    result = subprocess.run([*PROXY, "check-config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any("server.port" in line for line in lines)
    assert any("providers.x.type" in line for line in lines)
    assert any("tenants.acme.api_keys[0]" in line for line in lines)
    assert "plaintext-key" not in result.stdout  # never echo what might be a secret
    assert any("budgets.per_run_usd" in line for line in lines)


def test_keys_create_prints_a_key_and_only_its_hash_for_the_config() -> None:
    result = subprocess.run(
        [*PROXY, "keys", "create", "--tenant", "acme"], capture_output=True, text=True, check=True
    )
    key = re.search(r"aegis-sk-\S+", result.stdout)
    assert key is not None
    assert f'api_keys = ["{hash_key(key.group(0))}"]' in result.stdout


def test_a_receipt_trail_that_cannot_be_written_stops_the_proxy_at_startup(
    tmp_path: Path,
) -> None:
    config = tmp_path / "aegis.toml"
    (tmp_path / "receipts").write_text("a file where the receipt directory should be")
    config.write_text(
        f"[server]\nport = {free_port()}\n"
        '[ledger]\npath = "ledger.db"\n'
        '[receipts]\nsink = "file"\npath = "receipts"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )
    result = subprocess.run(
        [*PROXY, "serve", "--config", str(config)],
        env={**os.environ, "AEGIS_RECEIPT_SECRET": "r" * 32},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stderr + result.stdout


async def test_with_no_config_it_runs_on_the_environment_and_never_serves_unauthenticated(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    env = {
        "OPENAI_API_KEY": "sk-env",
        "OPENAI_BASE_URL": openai_upstream.base_url,
        "AEGIS_RECEIPT_SECRET": "r" * 32,
    }
    port = free_port()
    bare = subprocess.Popen(
        [*PROXY, "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.post(
                        f"http://127.0.0.1:{port}/v1/chat/completions", json={}
                    ) as response:
                        assert response.status == 401  # no tenants: nobody gets in
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
    finally:
        bare.terminate()
        output = bare.communicate(timeout=30)[0]
    assert "aegis-proxy keys create --tenant" in output

    (tmp_path / ".aegis").mkdir(exist_ok=True)
    (tmp_path / ".aegis/tenants.toml").write_text(
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )
    config_free = ProxyProcess(None, port, env, tmp_path / "env.log", cwd=tmp_path)
    await config_free.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                config_free.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as response,
        ):
            assert response.status == 200
    finally:
        config_free.stop()
    assert openai_upstream.fake.requests[0].headers["Authorization"] == "Bearer sk-env"
    assert list((tmp_path / ".aegis/receipts").glob("*.jsonl"))  # receipts under ./.aegis/
    assert (tmp_path / ".aegis/ledger.db").exists()

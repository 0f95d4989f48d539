"""``OPENAI_BASE_URL`` / ``GEMINI_BASE_URL`` where the config file names no ``base_url``: the
real program, in a subprocess, says at start where each provider is and calls it there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import ProxyProcess, free_port
from google import genai
from openai import AsyncOpenAI

from aegis.proxy import hash_key, new_key

KEY = new_key()


def _config(path: Path, port: int) -> Path:
    path.write_text(
        f"[server]\nport = {port}\n"
        '[ledger]\npath = "ledger.db"\n[receipts]\nsink = "memory"\n'
        '[providers.openai]\ntype = "openai"\napi_key_env = "FAKE_KEY"\n'
        '[providers.gemini]\ntype = "gemini"\napi_key_env = "FAKE_KEY"\n'
        f'[tenants.acme]\napi_keys = ["{hash_key(KEY)}"]\n'
    )
    return path


async def test_the_environment_names_the_upstreams_a_config_leaves_out(
    tmp_path: Path, openai_upstream: FakeUpstream, gemini_upstream: FakeGeminiServer
) -> None:
    port = free_port()
    env = {
        "FAKE_KEY": "sk-upstream",
        "AEGIS_RECEIPT_SECRET": "r" * 32,
        "OPENAI_BASE_URL": openai_upstream.base_url,
        "GEMINI_BASE_URL": gemini_upstream.url,
    }
    log = tmp_path / "proxy.log"
    proxy = ProxyProcess(_config(tmp_path / "aegis.toml", port), port, env, log)
    try:
        await proxy.start()
        text = log.read_text()
        assert f"provider openai (openai) -> {openai_upstream.base_url}" in text
        assert f"provider gemini (gemini) -> {gemini_upstream.url}" in text
        async with AsyncOpenAI(base_url=proxy.url + "/v1", api_key=KEY, max_retries=0) as client:
            reply = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
            )
        assert reply.choices[0].message.content
        assert len(openai_upstream.fake.requests) == 1
        gemini = genai.Client(api_key=KEY, http_options=genai.types.HttpOptions(base_url=proxy.url))
        answer = await gemini.aio.models.generate_content(
            model="gemini-2.5-flash", contents="Hello!"
        )
        assert answer.text
        assert len(gemini_upstream.fake.requests) == 1
    finally:
        proxy.stop()


def test_a_base_url_that_is_the_proxy_itself_is_refused_at_start(tmp_path: Path) -> None:
    # OPENAI_BASE_URL exported for a client of the proxy, then inherited by the proxy.
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "aegis.proxy", "serve", "--config", str(tmp_path / "a.toml")],
        env={
            "PATH": "/usr/bin:/bin",
            "FAKE_KEY": "sk-upstream",
            "OPENAI_BASE_URL": f"http://localhost:{port}/v1",
        },
        cwd=_config(tmp_path / "a.toml", port).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "would call this proxy itself" in result.stderr
    assert "unset OPENAI_BASE_URL" in result.stderr

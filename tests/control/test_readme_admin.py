"""The proxy README's admin-API curl script, run as written against a real ``aegis-proxy``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import aiohttp
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import ProxyProcess
from fakes.redis_replicas import free_port

from aegis.core import hash_key, new_key

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = new_key()


def readme_script() -> str:
    readme = (ROOT / "packages/aegis-proxy/README.md").read_text()
    block = readme.split("<!-- readme-admin-curl")[1].split("<!-- /readme-admin-curl -->")[0]
    return block.split("```sh\n")[1].split("```")[0]


async def test_the_readme_admin_curl_script_works(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    port = free_port()
    config = tmp_path / "aegis.toml"
    config.write_text(
        f"[server]\nport = {port}\n"
        '[ledger]\npath = "ledger.db"\n'
        '[receipts]\nsink = "file"\npath = "receipts"\n'
        f'[providers.openai]\ntype = "openai"\nbase_url = "{openai_upstream.base_url}"\n'
        'api_key_env = "FAKE_KEY"\n'
        f'[admin]\napi_keys = ["{hash_key(ADMIN_KEY)}"]\n'
    )
    env = {"FAKE_KEY": "sk-upstream", "AEGIS_RECEIPT_SECRET": "r" * 32}
    proxy = ProxyProcess(config, port, env, tmp_path / "proxy.log")
    await proxy.start()
    try:
        script = readme_script().replace("localhost:8787", proxy.url.removeprefix("http://"))
        done = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            env={**os.environ, "AEGIS_ADMIN_KEY": ADMIN_KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = await done.communicate()
        assert done.returncode == 0, stderr.decode()
        # curl prints each answer without a newline: read them one after the other.
        text, answers, decoder = stdout.decode(), [], json.JSONDecoder()
        while text.strip():
            answer, end = decoder.raw_decode(text.strip())
            answers.append(answer)
            text = text.strip()[end:]
        created, updated, listing, rotated, revoked = answers
        assert created["tenant_id"] == "customer-42"
        assert created["version"] == 1
        assert updated["version"] == 2
        assert updated["policy"]["budgets"]["per_window"][0]["limit_usd"] == "20"
        (key,) = listing["keys"]
        assert key["per_window"] == [{"window": "day", "limit_usd": "1"}]
        assert rotated["key"].startswith("aegis-sk-")
        assert rotated["old"]["state"] == "grace"
        assert revoked["state"] == "revoked"
        assert revoked["key_id"] == key["key_id"]
        # The rotated key works, through the real proxy.
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                proxy.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {rotated['key']}"},
                json={
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 5,
                },
            ) as response,
        ):
            assert response.status == 200
    finally:
        proxy.stop()

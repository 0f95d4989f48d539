"""``aegis-proxy tenants import|export|list`` and ``keys create --store|list|revoke``, run as
real subprocesses against the SQLite store a config names."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import Proxy

from aegis.core import hash_key
from aegis.proxy import Settings, load_settings, parse_settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
PROXY = [sys.executable, "-m", "aegis.proxy"]
HI: list[Any] = [{"role": "user", "content": "hi"}]


def write_config(tmp_path: Path, upstream: FakeUpstream, tenants: str) -> Path:
    config = tmp_path / "aegis.toml"
    config.write_text(
        f"""
[ledger]
path = "ledger.db"

[receipts]
sink = "file"
path = "receipts"

[providers.openai]
type = "openai"
base_url = "{upstream.base_url}"
api_key_env = "FAKE_KEY"

{tenants}
"""
    )
    return config


def run(*args: str) -> str:
    done = subprocess.run([*PROXY, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_import_export_round_trip_and_store_keys(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    old_key = "aegis-sk-imported-key-0123456789"
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        f"""
[tenants.acme]
api_keys = ["{hash_key(old_key)}"]
budgets = {{ per_run_usd = "0.5", per_window = [{{ window = "day", limit_usd = "10" }}] }}
model = {{ allow_models = ["gpt-4o*"] }}
limits = [{{ model = "gpt-4o*", rpm = 60 }}]

[tenants."team.b"]
routing = {{ primary_provider = "openai" }}
"""
    )
    config = write_config(tmp_path, openai_upstream, "")
    out = run("tenants", "import", "--config", str(config), "--file", str(tenants))
    assert out.splitlines() == ["acme: created, 1 key(s) added", "team.b: created, 0 key(s) added"]
    again = run("tenants", "import", "--config", str(config), "--file", str(tenants))
    assert "kept" in again
    assert (tmp_path / "control.db").exists()  # beside the ledger

    listed = run("tenants", "list", "--config", str(config))
    assert [line.split("\t")[0] for line in listed.splitlines()] == ["acme", "team.b"]

    exported = run("tenants", "export", "--config", str(config))
    original = parse_settings(
        {
            "tenants": tomllib.loads(tenants.read_text())["tenants"],
            "providers": {"openai": {"type": "openai"}},
        }
    )
    back = parse_settings(
        {"tenants": tomllib.loads(exported)["tenants"], "providers": {"openai": {"type": "openai"}}}
    )
    assert {t: s.policy for t, s in back.tenants.items()} == {
        t: s.policy for t, s in original.tenants.items()
    }
    assert back.tenants["acme"].api_key_hashes == (hash_key(old_key),)

    # A key made in the store by the CLI works at once against a proxy using that store.
    made = run("keys", "create", "--store", "--tenant", "acme", "--config", str(config))
    new_key = made.split()[-1]
    assert new_key.startswith("aegis-sk-")
    proxy = await start_proxy(load_settings(config))
    for key in (old_key, new_key):
        await proxy.client(key).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=5
        )
    keys = run("keys", "list", "--tenant", "acme", "--config", str(config))
    rows = [line.split("\t") for line in keys.splitlines()]
    assert [r[2] for r in rows] == ["active", "active"]
    assert rows[1][1] == new_key[:13] + "..."
    assert new_key not in keys
    assert hash_key(new_key) not in keys
    run("keys", "revoke", "--tenant", "acme", rows[1][0], "--config", str(config))
    # The proxy's poll (1 s) drops its cached hit; the key is refused from then on.
    await asyncio.sleep(1.5)
    with pytest.raises(openai.AuthenticationError):
        await proxy.client(new_key).chat.completions.create(
            model="gpt-4o-mini", messages=HI, max_tokens=5
        )


def test_errors_are_plain(tmp_path: Path, openai_upstream: FakeUpstream) -> None:
    config = write_config(tmp_path, openai_upstream, "")
    done = subprocess.run(
        [*PROXY, "keys", "revoke", "--tenant", "ghost", "key_1", "--config", str(config)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "no key 'key_1'" in done.stderr
    config.write_text(config.read_text() + '\n[store]\nbackend = "none"\n')
    done = subprocess.run(
        [*PROXY, "tenants", "list", "--config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "store.backend" in done.stderr


async def test_tenants_and_keys_against_a_running_proxy(
    tmp_path: Path, openai_upstream: FakeUpstream
) -> None:
    from fakes.proxy_harness import ProxyProcess
    from fakes.redis_replicas import free_port

    from aegis.core import new_key

    admin_key = new_key()
    port = free_port()
    config = write_config(tmp_path, openai_upstream, "")
    config.write_text(
        config.read_text().replace("[ledger]", f"[server]\nport = {port}\n[ledger]")
        + f'\n[admin]\napi_keys = ["{hash_key(admin_key)}"]\n'
    )
    proxy = ProxyProcess(
        config, port, {"FAKE_KEY": "sk-up", "AEGIS_RECEIPT_SECRET": "r" * 32}, tmp_path / "p.log"
    )
    await proxy.start()
    env = {"AEGIS_ADMIN_KEY": admin_key}

    def remote(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PROXY, *args, "--url", proxy.url],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env},
        )

    try:
        policy = '{"budgets": {"per_window": [{"window": "day", "limit_usd": "3"}]}}'
        done = remote("tenants", "create", "cli-t", "--policy", policy)
        assert done.returncode == 0, done.stderr
        assert "created tenant cli-t (version 1)" in done.stdout
        assert "cli-t\tstore\tversion 1" in remote("tenants", "list").stdout
        shown = json.loads(remote("tenants", "show", "cli-t").stdout)
        assert shown["policy"]["budgets"]["per_window"][0]["limit_usd"] == "3"
        made = remote("keys", "create", "--tenant", "cli-t", "--name", "job")
        key_id = made.stdout.split()[3]
        key = made.stdout.split()[-1]
        assert key.startswith("aegis-sk-")
        assert key_id.startswith("key_")
        rotated = remote("keys", "rotate", "--tenant", "cli-t", key_id, "--grace-s", "60")
        assert rotated.returncode == 0, rotated.stderr
        assert "keeps working until" in rotated.stdout
        listed = remote("keys", "list", "--tenant", "cli-t").stdout
        states = [line.split("\t")[2] for line in listed.splitlines()]
        assert states == ["grace", "active"]
        assert remote("keys", "revoke", "--tenant", "cli-t", key_id).returncode == 0
        assert "revoked" in remote("keys", "list", "--tenant", "cli-t").stdout
        # Errors are the proxy's, plainly; a missing admin key is said before anything runs.
        bad = remote("tenants", "create", "bad id")
        assert bad.returncode == 1
        assert "tenant_id must" in bad.stderr
        env.clear()
        assert "AEGIS_ADMIN_KEY" in remote("tenants", "list").stderr
        for receipt_file in (tmp_path / "receipts").glob("*.jsonl"):
            assert key not in receipt_file.read_text()
    finally:
        proxy.stop()

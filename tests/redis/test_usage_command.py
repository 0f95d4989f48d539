"""``aegis-proxy usage TENANT`` reads whichever ledger is configured (SQLite here; the Redis
ledger in test_replicas)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fakes.redis_replicas import PROXY

from aegis.core import Account, SqliteLedger


def usage(config: Path, tenant: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROXY, "usage", tenant, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_usage_reads_the_sqlite_ledger(tmp_path: Path) -> None:
    config = tmp_path / "aegis.toml"
    config.write_text(
        '[ledger]\nbackend = "sqlite"\npath = "ledger.db"\n'
        '[tenants.acme.budgets]\nper_run_usd = "0.5"\n'
        'per_window = [{window = "day", limit_usd = "2"}]\n'
    )
    ledger = SqliteLedger(tmp_path / "ledger.db")
    day = Account("day:2999-01-01", "day", 2_000_000_000, True, expires_at=4e10)
    run = Account("run:r1", "per_run", 500_000_000, True, expires_at=4e10)
    await ledger.reserve(
        tenant_id="acme", hold_id="a", amount_nanos=300_000_000, accounts=[day, run], ttl_s=60
    )
    await ledger.commit(tenant_id="acme", hold_id="a", amount_nanos=250_000_000)
    await ledger.reserve(
        tenant_id="acme", hold_id="b", amount_nanos=100_000_000, accounts=[day], ttl_s=3600
    )
    await ledger.close()

    shown = usage(config, "acme")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "tenant acme"
    assert lines[1].split() == ["account", "budget", "limit", "committed", "held", "available"]
    assert lines[2].split() == ["day:2999-01-01", "day", "$2", "$0.25", "$0.1", "$1.65"]
    assert lines[3].split() == ["run:r1", "per_run", "$0.5", "$0.25", "$0", "$0.25"]
    assert lines[4] == "pending reservations: 1 holding $0.1"
    assert lines[5].split()[:2] == ["b", "$0.1"]

    other = usage(config, "nobody")
    assert other.returncode == 0
    assert "no spend recorded" in other.stdout


def test_usage_explains_that_a_memory_ledger_cannot_be_read(tmp_path: Path) -> None:
    config = tmp_path / "aegis.toml"
    config.write_text('[ledger]\nbackend = "memory"\n')
    shown = usage(config, "acme")
    assert shown.returncode == 1
    assert "memory ledger lives inside the proxy process" in shown.stderr

"""The control-plane store at scale: 100,000 tenants and 1,000,000 keys in the SQLite store.

Two proxies with no tenants in their config file, each on a store of its own: one holding 10
tenants (one key each), one holding ``--tenants`` tenants and ``--keys`` keys (the first 1,000
keys, of 1,000 tenants, are the ones called). The figures: the time from starting the big one
to its ``/readyz`` answering 200, its RSS at rest and after the run, the first call of a key
(a store lookup) against a cached one, and CPU per call, 10 against 100,000 tenants, called in
turn. Building the store file is not part of the start time (it is the operator's data).

    uv run python -m bench.control            # 100,000 tenants, 1,000,000 keys
    uv run python -m bench.control --quick    # 10,000 tenants, 100,000 keys
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aegis.core import Policy, SqliteControlStore
from bench._procs import (
    Proc,
    boost,
    free_port,
    pin,
    rss_mb,
    start_proxy,
    start_upstream,
    write_config,
)
from bench._report import report
from bench.proxy import (
    CHAT,
    LOAD_CORE,
    PROXY_CORE,
    Target,
    compare,
    measure,
    raise_fd_limit,
    row,
    warm,
)

_POLICY = {
    "capabilities": ["llm:invoke", "llm:stream"],
    "budgets": {
        "per_run_usd": "10",
        "per_window": [
            {"window": "day", "limit_usd": "1000000"},
            {"window": "month", "limit_usd": "1000000"},
        ],
    },
    "model": {"allow_models": ["gpt-4o*"]},
}
_CALLED = 1000


async def build_store(path: Path, tenants: int, keys: int) -> list[str]:
    """A store file with ``tenants`` tenants and ``keys`` keys spread over them; returns the
    plain keys of the first ``_CALLED`` tenants (one each)."""
    await _open(path)
    return await asyncio.to_thread(_fill, path, tenants, keys)


def _fill(path: Path, tenants: int, keys: int) -> list[str]:
    now = time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    rows = []
    for i in range(tenants):
        tenant_id = f"t{i:06d}"
        body = json.dumps(
            Policy.from_dict(tenant_id, _POLICY).to_dict(), sort_keys=True, separators=(",", ":")
        )
        rows.append((tenant_id, body, 1, now, now))
    conn.executemany("INSERT INTO aegis_tenants VALUES (?, ?, ?, ?, ?)", rows)
    called: list[str] = []
    batch = []
    for k in range(keys):
        tenant = k % tenants
        key = "aegis-sk-" + secrets.token_urlsafe(32)
        if k < min(_CALLED, tenants):
            called.append(key)
        digest = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
        batch.append(
            (
                f"key_{k:016x}",
                f"t{tenant:06d}",
                digest,
                key[:13],
                None,
                now,
                None,
                None,
                None,
                None,
                1,
            )
        )
        if len(batch) == 50_000:
            conn.executemany("INSERT INTO aegis_keys VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
            batch.clear()
    conn.executemany("INSERT INTO aegis_keys VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
    conn.execute("COMMIT")
    conn.close()
    return called


async def _open(path: Path) -> None:
    store = SqliteControlStore(path)
    await store.open()
    await store.close()


def _config(workdir: Path, name: str, upstream: Proc, store: Path) -> tuple[Path, int]:
    config = workdir / f"{name}.toml"
    port = free_port()
    write_config(config, port=port, upstream_port=upstream.port, tenants=0, keyed=0)
    with config.open("a") as f:
        f.write(f'[store]\nbackend = "sqlite"\npath = "{store}"\n')
    return config, port


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    tenants, keys = (10_000, 100_000) if args.quick else (args.tenants, args.keys)
    reps, duration_s = (2, 0.4) if args.quick else (args.reps, args.duration)
    pin(os.getpid(), LOAD_CORE)
    boost(os.getpid())
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-control-"))
    procs: list[Proc] = []
    rows: list[dict[str, Any]] = []
    try:
        print(f"building stores: 10 tenants, and {tenants} tenants / {keys} keys", flush=True)
        started = time.perf_counter()
        small_keys = await build_store(workdir / "small.db", 10, 10)
        big_keys = await build_store(workdir / "big.db", tenants, keys)
        built_s = time.perf_counter() - started
        upstream = start_upstream(workdir, LOAD_CORE)
        procs.append(upstream)
        direct = Target("direct", upstream.port, upstream.pid)

        config, port = _config(workdir, "small", upstream, workdir / "small.db")
        small_proc = start_proxy(config, port, PROXY_CORE)
        procs.append(small_proc)
        small = Target("store-10", port, small_proc.pid, small_keys)

        config, port = _config(workdir, "big", upstream, workdir / "big.db")
        started = time.perf_counter()
        big_proc = start_proxy(config, port, PROXY_CORE)
        ready_s = time.perf_counter() - started
        procs.append(big_proc)
        rest_mb = rss_mb(big_proc.pid)
        big = Target(f"store-{tenants}", port, big_proc.pid, big_keys)

        # The first call of each key looks it up in the store (and loads its tenant's policy):
        # one call per key, 1,000 keys, at c=1.
        cold = await measure(big, CHAT, 1, 0.0001 + duration_s)
        await warm(direct)
        await warm(small)
        await warm(big)
        warm_sample = await measure(big, CHAT, 1, duration_s)
        rows += [
            row(
                f"store of {tenants} tenants / {keys} keys: built s (not in the start)", "", built_s
            ),
            row(f"{tenants} tenants / {keys} keys: start to /readyz s", "", ready_s, goal="<= 2"),
            row(f"{tenants} tenants / {keys} keys: RSS at rest MB", "", rest_mb, goal="<= 150"),
            row(
                "c=1 p50 ms, first calls of keys (store lookups) vs cached keys",
                cold.p50_ms,
                warm_sample.p50_ms,
                f"{warm_sample.p50_ms - cold.p50_ms:+.3f}",
            ),
        ]
        compared = await compare(
            direct, small, big, f"store 10 vs {tenants} tenants", max(2, reps - 2), duration_s
        )
        for r in compared:
            r["goal"] = "within 10%" if "CPU" in r["figure"] else ""
        rows += compared
        rows.append(
            row(f"{tenants} tenants: RSS after the run MB", "", rss_mb(big_proc.pid), goal="<= 150")
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(
        "control",
        rows,
        note=(
            f"{platform.processor() or platform.machine()}; proxy pinned to core 0, upstream + "
            "load on core 1; no tenant in the config file, every tenant and key in the SQLite "
            "store; medians of interleaved reps"
        ),
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.control", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 tenants, 100,000 keys")
    parser.add_argument("--tenants", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))

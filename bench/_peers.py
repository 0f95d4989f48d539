"""Aegis side by side with LiteLLM proxy and the Portkey gateway, under the same load.

Run: ``uv run python -m bench._peers`` (``make bench-peers``). Not part of ``make bench`` or
CI: it installs both peers at run time into a scratch folder outside the repository
(``$AEGIS_BENCH_PEERS_DIR``, default ``/tmp/aegis-bench-peers``), and neither is a dependency
of any package here:

- LiteLLM proxy: ``pip install 'litellm[proxy]==1.108.7'`` into its own venv, one worker,
  the bench upstream as an ``openai/`` model;
- Portkey gateway: ``npm install @portkey-ai/gateway@1.15.2`` with ``@hono/node-server``
  pinned to 1.13.8 through npm ``overrides`` (newer versions break its streaming with
  ``TypeError: immutable``), the upstream passed as ``x-portkey-custom-host``.

Each gateway runs alone on core 0 in turn, with the same instant upstream and load generator
on core 1 as ``bench.proxy``; every figure is interleaved with the direct upstream, repeated,
and the medians reported. Aegis runs with governance fully on; the peers run as installed
(no database, no auth), which is how they are usually benchmarked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench._load import closed_loop
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
    STREAM,
    Target,
    added,
    busy_warning,
    interleaved,
    med,
    raise_fd_limit,
    warm,
)

LITELLM: Final = "litellm[proxy]==1.108.7"
PORTKEY: Final = "1.15.2"
HONO_NODE_SERVER: Final = "1.13.8"


def scratch() -> Path:
    path = Path(os.environ.get("AEGIS_BENCH_PEERS_DIR", "/tmp/aegis-bench-peers"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def install_litellm(root: Path) -> Path:
    venv = root / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"installing {LITELLM} into {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", LITELLM], check=True)
    return exe


def install_portkey(root: Path) -> Path:
    folder = root / "portkey"
    entry = folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not entry.exists():
        print(f"installing @portkey-ai/gateway@{PORTKEY} into {folder}", flush=True)
        folder.mkdir(exist_ok=True)
        (folder / "package.json").write_text(
            json.dumps(
                {
                    "name": "aegis-bench-peers",
                    "private": True,
                    "dependencies": {"@portkey-ai/gateway": PORTKEY},
                    "overrides": {"@hono/node-server": HONO_NODE_SERVER},
                }
            )
        )
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=folder, check=True)
    return entry


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the gateway exited: " + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{url}: the gateway did not become ready: " + log.read_text()[-3000:])


def _spawn(argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> Proc:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    pin(process.pid, PROXY_CORE)
    boost(process.pid)
    return Proc(process, 0, log)


def start_litellm(exe: Path, workdir: Path, upstream_port: int) -> tuple[Proc, Target]:
    port = free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
        "      api_key: sk-bench\n"
    )
    master_key = "sk-" + secrets.token_hex(32)
    env = {
        **os.environ,
        # It refuses to start without one; with no database it only compares it.
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
    }
    argv = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = _spawn([*argv, "--num_workers", "1"], workdir / "litellm.log", env)
    _wait(f"http://127.0.0.1:{port}/health/liveliness", proc.process, proc.log)
    pin(proc.pid, PROXY_CORE)
    return proc, Target("litellm", port, proc.pid, (master_key,))


def start_portkey(entry: Path, workdir: Path, upstream_port: int) -> tuple[Proc, Target]:
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    argv = ["node", str(entry), f"--port={port}", "--headless"]
    proc = _spawn(argv, workdir / "portkey.log", env, cwd=entry.parent)
    _wait(f"http://127.0.0.1:{port}/", proc.process, proc.log)
    pin(proc.pid, PROXY_CORE)
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1",
        "Authorization": "Bearer sk-bench",
    }
    return proc, Target("portkey", port, proc.pid, headers=headers)


def start_aegis(workdir: Path, upstream_port: int) -> tuple[Proc, Target]:
    port = free_port()
    config = workdir / "aegis.toml"
    keys = write_config(config, port=port, upstream_port=upstream_port, tenants=10, keyed=10)
    proc = start_proxy(config, port, PROXY_CORE)
    return proc, Target("aegis", port, proc.pid, keys)


@dataclass(frozen=True)
class Figures:
    values: dict[str, float]


async def figures(direct: Target, gateway: Target, reps: int, duration_s: float) -> Figures:
    out: dict[str, float] = {}

    for c in (1, 16, 64):
        s = await interleaved((direct, gateway), CHAT, c, reps, duration_s)
        d, g = s[direct.name], s[gateway.name]
        out[f"c={c} added p50 ms"] = added(d, g, lambda x: x.p50_ms)
        out[f"c={c} added p99 ms"] = added(d, g, lambda x: x.p99_ms)
        out[f"c={c} calls/s"] = med(g, lambda x: x.calls_per_s)
        out[f"c={c} CPU ms/call"] = med(g, lambda x: x.cpu_ms_per_call)
        print(f"  {gateway.name}: non-streamed c={c} done", flush=True)
    out["c=64 calls/s per core (1000 / CPU ms)"] = 1000 / out["c=64 CPU ms/call"]
    for c in (1, 16):
        s = await interleaved((direct, gateway), STREAM, c, reps, duration_s)
        d, g = s[direct.name], s[gateway.name]
        out[f"stream c={c} added first byte p50 ms"] = added(d, g, lambda x: x.ttfb_p50_ms)
        out[f"stream c={c} added total p50 ms"] = added(d, g, lambda x: x.p50_ms)
        out[f"stream c={c} CPU ms/stream"] = med(g, lambda x: x.cpu_ms_per_call)
        print(f"  {gateway.name}: streamed c={c} done", flush=True)
    out["RSS after the run MB"] = rss_mb(gateway.pid)
    return Figures(out)


GOALS: Final = {
    "c=1 added p50 ms": "<= 0.5",
    "c=1 added p99 ms": "<= 2",
    "c=64 calls/s": ">= 2000",
    "c=64 CPU ms/call": "<= 0.4",
    "c=64 calls/s per core (1000 / CPU ms)": ">= 2000",
    "stream c=1 added first byte p50 ms": "<= 1",
    "stream c=16 CPU ms/stream": "<= 1.5",
    "RSS after the run MB": "<= 100",
}


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    reps, duration_s = (2, 0.5) if args.quick else (args.reps, args.duration)
    root = scratch()
    starters: dict[str, Callable[[Path, int], tuple[Proc, Target]]] = {}
    if "litellm" in args.gateways:
        exe = install_litellm(root)
        starters["litellm"] = lambda w, p: start_litellm(exe, w, p)
    if "portkey" in args.gateways:
        entry = install_portkey(root)
        starters["portkey"] = lambda w, p: start_portkey(entry, w, p)
    if "aegis" in args.gateways:
        starters["aegis"] = start_aegis
    pin(os.getpid(), LOAD_CORE)
    boost(os.getpid())
    load_before = busy_warning()
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-peers-"))
    results: dict[str, Figures] = {}
    upstream = start_upstream(workdir, LOAD_CORE)
    try:
        direct = Target("direct", upstream.port, upstream.pid)
        await warm(direct)
        for name, start in starters.items():
            print(f"starting {name}", flush=True)
            proc, target = start(workdir, upstream.port)
            try:
                # JIT-compiled peers (Portkey's V8) need thousands of calls to reach speed.
                for body in (CHAT, STREAM):
                    await closed_loop(
                        target.port, target.requests(body), concurrency=16, duration_s=args.warm
                    )
                results[name] = await figures(direct, target, reps, duration_s)
            finally:
                proc.stop()
    finally:
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    names = list(results)
    rows: list[dict[str, Any]] = []
    for figure in next(iter(results.values())).values:
        row: dict[str, Any] = {"figure": figure}
        for name in names:
            value = results[name].values[figure]
            row[name] = round(value, 3) if abs(value) < 100 else round(value)
        row["aegis goal"] = GOALS.get(figure, "")
        rows.append(row)
    report(
        "peers",
        rows,
        note=(
            f"each gateway alone on core 0, upstream + load on core 1; {reps} interleaved reps "
            f"x {duration_s}s, medians; 'added' is against the direct upstream; aegis with "
            "governance on, the peers as installed; "
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        ),
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._peers", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--warm", type=float, default=3.0, help="warm-up seconds per body")
    parser.add_argument(
        "--gateways",
        type=lambda s: s.split(","),
        default=["litellm", "portkey", "aegis"],
        help="comma-separated: litellm,portkey,aegis",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))

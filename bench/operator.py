"""What the operator surface costs: the proxy with metrics on (the default: receipt-derived
counters, latency histograms, the admin API's aggregates; tracing off) against the same proxy
with every operator feature off, on the proxy benchmark's setup.

Run: ``uv run python -m bench.operator`` (about 40 s; ``--quick`` for a smoke run).

Two proxies with the same governance (SQLite ledger, file receipts with group commit, per-run
and window budgets) are started, one with ``[observability] metrics = true`` and one with
``metrics = access_log = dashboard = false``; the direct upstream, "off" and "on" are measured
in turn, in a rotating order, and each figure is a median over repetitions. "overhead" is what
a proxy adds over the direct upstream; the issue's bound is that metrics move it by < 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._procs import Proc, free_port, pin, start_proxy, start_upstream, write_config
from bench._report import report
from bench.proxy import (
    CHAT,
    LOAD_CORE,
    PROXY_CORE,
    STREAM,
    Sample,
    Target,
    interleaved,
    med,
    raise_fd_limit,
    warm,
)

_OFF = "[observability]\nmetrics = false\naccess_log = false\ndashboard = false\n"
_ON = "[observability]\nmetrics = true\n"


def _start(workdir: Path, name: str, upstream: Proc, section: str) -> tuple[Proc, list[str]]:
    config = workdir / f"{name}.toml"
    port = free_port()
    keys = write_config(config, port=port, upstream_port=upstream.port, tenants=10, keyed=10)
    config.write_text(config.read_text() + section)
    return start_proxy(config, port, PROXY_CORE), keys


def _rows(
    label: str, samples: dict[str, list[Sample]], pick: Any, higher_is_better: bool = False
) -> list[dict[str, Any]]:
    direct = med(samples["direct"], pick)
    off = med(samples["off"], pick)
    on = med(samples["on"], pick)
    rows = [
        {
            "figure": label,
            "direct": round(direct, 3),
            "metrics off": round(off, 3),
            "metrics on": round(on, 3),
            "change": f"{(on - off) / off * 100:+.1f}%" if off else "",
        }
    ]
    if not higher_is_better and label.endswith("latency p50 ms"):
        added_off, added_on = off - direct, on - direct
        rows.append(
            {
                "figure": label.replace("latency p50 ms", "overhead p50 ms (proxy - direct)"),
                "direct": "",
                "metrics off": round(added_off, 3),
                "metrics on": round(added_on, 3),
                "change": f"{(added_on - added_off) / added_off * 100:+.1f}%" if added_off else "",
            }
        )
    return rows


def _scraped_requests(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(int(float(v)) for v in re.findall(r"^aegis_requests_total\{.*\} (\S+)$", text, re.M))


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    reps, duration_s = (2, 0.4) if args.quick else (args.reps, args.duration)
    pin(os.getpid(), LOAD_CORE)
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-operator-"))
    procs: list[Proc] = []
    try:
        upstream = start_upstream(workdir, LOAD_CORE)
        procs.append(upstream)
        off_proc, off_keys = _start(workdir, "off", upstream, _OFF)
        procs.append(off_proc)
        on_proc, on_keys = _start(workdir, "on", upstream, _ON)
        procs.append(on_proc)
        targets = (
            Target("direct", upstream.port, upstream.pid),
            Target("off", off_proc.port, off_proc.pid, off_keys),
            Target("on", on_proc.port, on_proc.pid, on_keys),
        )
        for target in targets:
            await warm(target)
        rows: list[dict[str, Any]] = []
        for body, kind, concurrency in (
            (CHAT, "chat", 1),
            (CHAT, "chat", 16),
            (STREAM, "stream", 4),
        ):
            print(f"measuring {kind} c={concurrency}", flush=True)
            s = await interleaved(targets, body, concurrency, reps, duration_s)
            name = f"{kind} c={concurrency}"
            rows += _rows(f"{name} latency p50 ms", s, lambda x: x.p50_ms)
            rows += _rows(f"{name} calls/s", s, lambda x: x.calls_per_s, higher_is_better=True)
            rows += _rows(f"{name} proxy CPU ms/call", s, lambda x: x.cpu_ms_per_call)
        counted = _scraped_requests(on_proc.port)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(
        "operator",
        rows,
        note=(
            f"{platform.processor() or platform.machine()}; proxies pinned to core 0, upstream + "
            f"load on core 1; {reps} rotating reps x {duration_s}s, medians; tracing off in both; "
            f"the 'on' proxy's /metrics counted {counted} receipts"
        ),
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.operator", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--reps", type=int, default=5, help="rotating repetitions")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))

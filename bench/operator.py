"""What the operator surface costs, on the proxy benchmark's setup: the same governed proxy
with every operator feature off, with metrics on (receipt-derived counters, latency
histograms, the admin API's aggregates; tracing off) and with the defaults (metrics and the
JSON access log, written at INFO as ``bench.proxy`` runs it).

Run: ``uv run python -m bench.operator`` (about a minute; ``--quick`` for a smoke run).

Proxies with the same governance (SQLite ledger, file receipts with group commit, per-run and
window budgets) are started: two "off" (``metrics = access_log = dashboard = false``), one
"metrics" (``access_log = false``) and one "defaults"; the direct upstream and the proxies are
measured in turn, in a rotating order, and each figure is a median over repetitions.
"overhead" is what a proxy adds over the direct upstream; the issue's bound is that metrics
move it by < 5%. The "noise" column is the difference between the two "off" processes:
identical configurations, so a change of that size is the machine, not the code. The last
rows time the operator's own work per request in this process, which bounds its cost without
the machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import platform
import re
import shutil
import tempfile
import time
import timeit
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aegis.core import (
    Decision,
    HmacSha256Signer,
    Receipt,
    ReceiptChain,
    Usage,
    default_pricing_table,
)
from aegis.proxy.access_log import (
    ACCESS_LOGGER,
    BufferedLineHandler,
    access_record,
    log_access,
)
from aegis.proxy.stats import ReceiptStats
from aegis.proxy.timing import (
    RequestTiming,
    current_timing,
    first_chunk,
    upstream_answered,
    upstream_sent,
)
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
_METRICS_KEY = "aegis-sk-bench-metrics-key-0123456789"
_METRICS_HASH = "sha256:" + hashlib.sha256(_METRICS_KEY.encode()).hexdigest()
_METRICS = (
    f'[observability]\nmetrics = true\naccess_log = false\nmetrics_keys = ["{_METRICS_HASH}"]\n'
)
_DEFAULTS = f'[observability]\nmetrics_keys = ["{_METRICS_HASH}"]\n'  # defaults, with a key
_CONFIGS = (("off-a", _OFF), ("metrics", _METRICS), ("off-b", _OFF), ("defaults", _DEFAULTS))


def _start(workdir: Path, name: str, upstream: Proc, section: str) -> tuple[Proc, list[str]]:
    config = workdir / f"{name}.toml"
    port = free_port()
    keys = write_config(config, port=port, upstream_port=upstream.port, tenants=10, keyed=10)
    config.write_text(config.read_text() + section)
    return start_proxy(config, port, PROXY_CORE), keys


def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old * 100:+.1f}%" if old else ""


def _rows(
    label: str, samples: dict[str, list[Sample]], pick: Any, higher_is_better: bool = False
) -> list[dict[str, Any]]:
    direct = med(samples["direct"], pick)
    off = med(samples["off-a"] + samples["off-b"], pick)
    metrics = med(samples["metrics"], pick)
    defaults = med(samples["defaults"], pick)
    rows = [
        {
            "figure": label,
            "direct": round(direct, 3),
            "off": round(off, 3),
            "metrics": round(metrics, 3),
            "metrics vs off": _pct(metrics, off),
            "defaults": round(defaults, 3),
            "defaults vs off": _pct(defaults, off),
            "noise": _pct(med(samples["off-b"], pick), med(samples["off-a"], pick)),
        }
    ]
    if not higher_is_better and label.endswith("latency p50 ms"):
        rows.append(
            {
                "figure": label.replace("latency p50 ms", "overhead p50 ms (proxy - direct)"),
                "direct": "",
                "off": round(off - direct, 3),
                "metrics": round(metrics - direct, 3),
                "metrics vs off": _pct(metrics - direct, off - direct),
                "defaults": round(defaults - direct, 3),
                "defaults vs off": _pct(defaults - direct, off - direct),
                "noise": "",
            }
        )
    return rows


def _scraped_requests(port: int) -> int:
    scrape = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {_METRICS_KEY}"}
    )
    with urllib.request.urlopen(scrape, timeout=5) as response:
        text = response.read().decode()
    return sum(int(float(v)) for v in re.findall(r"^aegis_requests_total\{.*\} (\S+)$", text, re.M))


def work_per_request_us() -> dict[str, float]:
    """The operator surface's own work per request, timed in this process: the receipt hook,
    the middleware's timestamps and its histogram updates."""
    stats = ReceiptStats(default_pricing_table(), [f"t{i:06d}" for i in range(10)])
    chain = ReceiptChain(HmacSha256Signer(key_id="bench", secret="s" * 32))
    # Sealed, as the Gate hands receipts over (with their canonical line already made).
    receipt = chain.seal(
        Receipt(
            receipt_id="0" * 32,
            request_id="r",
            tenant_id="t000001",
            run_id=None,
            provider="up",
            model="gpt-4o-mini",
            capability="llm:invoke",
            decision=Decision(True),
            status="ok",
            usage=Usage(input_tokens=31, output_tokens=22),
            usage_source="reported",
            estimated_usd="0.0000430",
            reserved_usd="0.0000430",
            actual_usd="0.0000178",
            overage=False,
            late=False,
            pricing_version=None,
            pricing_as_of=None,
            policy_version=None,
            started_at="2026-11-26T00:00:00.000000Z",
            finished_at="2026-11-26T00:00:00.001000Z",
            latency_us=1000,
        )
    )
    var = current_timing()

    def request() -> None:
        started = time.monotonic()
        timing = RequestTiming(started)
        token = var.set(timing)
        upstream_sent()
        first_chunk()
        upstream_answered()
        var.reset(token)
        stats.observe_request("/v1/chat/completions", time.monotonic() - started, 0.0005, None, 1)

    n = 200_000
    hook = min(timeit.repeat(lambda: stats.observe(receipt), number=n, repeat=5)) / n * 1e6
    middleware = min(timeit.repeat(request, number=n, repeat=5)) / n * 1e6
    access = logging.getLogger(ACCESS_LOGGER)
    with tempfile.TemporaryFile("w") as sink:
        handler = BufferedLineHandler(sink)
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False

        def line() -> None:
            log_access(
                access_record(
                    method="POST",
                    route="/v1/chat/completions",
                    status=200,
                    receipts=[receipt],
                    latency_s=0.001,
                    upstream_s=0.0005,
                    attempts=1,
                )
            )

        m = n // 4
        logged = min(timeit.repeat(line, number=m, repeat=5)) / m * 1e6
        access.removeHandler(handler)
    return {
        "receipt hook": hook,
        "middleware timing + histograms": middleware,
        "access line (defaults only)": logged,
    }


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    reps, duration_s = (2, 0.4) if args.quick else (args.reps, args.duration)
    pin(os.getpid(), LOAD_CORE)
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-operator-"))
    procs: list[Proc] = []
    try:
        upstream = start_upstream(workdir, LOAD_CORE)
        procs.append(upstream)
        targets = [Target("direct", upstream.port, upstream.pid)]
        for name, section in _CONFIGS:
            proc, keys = _start(workdir, name, upstream, section)
            procs.append(proc)
            targets.append(Target(name, proc.port, proc.pid, keys))
        on_proc = procs[2]  # "metrics"
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
        off_cpu = med(s["off-a"] + s["off-b"], lambda x: x.cpu_ms_per_call) * 1000
    finally:
        for proc in reversed(procs):
            proc.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    work = work_per_request_us()
    total = work["receipt hook"] + work["middleware timing + histograms"]
    for name, us in work.items():
        rows.append({"figure": f"{name} us/request", "metrics": round(us, 2)})
    rows.append(
        {
            "figure": "operator work / proxy CPU per streamed call",
            "metrics": f"{total / off_cpu * 100:.2f}%",
            "defaults": f"{(total + work['access line (defaults only)']) / off_cpu * 100:.2f}%",
        }
    )
    report(
        "operator",
        rows,
        note=(
            f"{platform.processor() or platform.machine()}; proxies pinned to core 0, upstream + "
            f"load on core 1; {reps} rotating reps x {duration_s}s, medians; tracing off; "
            f"the 'metrics' proxy's /metrics counted {counted} receipts"
        ),
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.operator", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--reps", type=int, default=4, help="rotating repetitions")
    parser.add_argument("--duration", type=float, default=0.8, help="seconds per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))

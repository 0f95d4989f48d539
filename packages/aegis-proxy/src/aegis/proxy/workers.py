"""``aegis-proxy serve --workers N``: N processes serving one port, so one host's every core
works.

Each worker is a whole proxy (``serve --workers 1``) that binds the port with SO_REUSEPORT, so
the kernel spreads connections over them. They share what replicas share: the ledger (one
SQLite file holds the budgets exactly across processes; Redis across hosts) and the config
folder; each writes a receipt trail of its own (the first free slot: ``receipts``,
``receipts.2`` …), verifiable together with ``aegis-receipts verify --trails``.

The supervisor forwards SIGHUP (reload) and SIGTERM/SIGINT (drain, then exit) to every worker
and restarts a worker that dies on its own.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Final

__all__ = ["default_workers", "supervise"]

logger = logging.getLogger(__name__)

_RESTART_BACKOFF_S: Final = 1.0


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def supervise(worker_args: Sequence[str], count: int, drain_timeout_s: float) -> int:
    """Run ``count`` workers (``python -m aegis.proxy serve`` + ``worker_args``) until told to
    stop; returns the exit code."""
    command = [sys.executable, "-m", "aegis.proxy", "serve", *worker_args]
    workers: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def start(slot: int) -> None:
        workers[slot] = subprocess.Popen(command)

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for worker in workers.values():
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for slot in range(count):
        start(slot)
    logger.info("serving with %d workers", count)
    while not stopping:
        time.sleep(0.2)
        for slot, worker in list(workers.items()):
            code = worker.poll()
            if code is not None and not stopping:
                logger.error("worker %d exited with %s; restarting it", worker.pid, code)
                time.sleep(_RESTART_BACKOFF_S)
                if not stopping:
                    start(slot)
    deadline = time.monotonic() + drain_timeout_s + 5.0
    status = 0
    for worker in workers.values():
        try:
            code = worker.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            code = worker.wait()
        status = status or (code if code > 0 else 0)
    return status

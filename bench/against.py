"""This checkout's proxy against another revision's, side by side in one run.

Run: ``uv run python -m bench.against [REV]`` (default ``HEAD``: the working tree against its
last commit; on a clean tree that is two identical proxies, which shows the run's noise).
``--configs``, ``--concurrency``, ``--reps`` and ``--duration`` narrow or lengthen it.

REV is checked out into a temporary git worktree. Each proxy runs its own tree's packages (put
first on its ``PYTHONPATH``, with this environment's dependencies), pinned to the same core,
against the same instant upstream; the direct upstream and the proxies are called in turn, in
an order that rotates, and the table gives medians. On a shared or virtual machine the
figures of one proxy move between runs more than most changes move them: only a comparison
made in one run, like this one, tells a change from the machine.

Configurations: ``defaults`` (SQLite ``synchronous = "full"``, receipts fsynced per write, as
the proxy ships) and ``normal-group`` (``normal`` and group commit every 50 ms, as in
``bench.proxy``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._procs import Proc, boost, pin, start_upstream
from bench._report import report
from bench.proxy import (
    CHAT,
    LOAD_CORE,
    Target,
    added,
    fresh_proxy,
    interleaved,
    med,
    raise_fd_limit,
    warm,
)

REPO = Path(__file__).parent.parent
CONFIGS = ("defaults", "normal-group")


def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    pin(os.getpid(), LOAD_CORE)
    boost(os.getpid())
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-against-"))
    base = workdir / "base"
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(base), args.rev], check=True)
    try:
        commit = subprocess.run(
            ["git", "-C", str(base), "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        rows = asyncio.run(measure(args, workdir, base, commit))
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    report(
        "against",
        rows,
        note=(
            f"this tree against {args.rev} ({commit}); {args.reps} interleaved reps x "
            f"{args.duration}s, medians; load average {os.getloadavg()[0]:.1f} after"
        ),
    )


async def measure(
    args: argparse.Namespace, workdir: Path, base: Path, commit: str
) -> list[dict[str, Any]]:
    procs: list[Proc] = []
    rows: list[dict[str, Any]] = []
    try:
        upstream = start_upstream(workdir, LOAD_CORE)
        procs.append(upstream)
        direct = Target("direct", upstream.port, upstream.pid)
        await warm(direct)
        targets = [direct]
        for config in args.configs.split(","):
            for tree, source in (("this", None), (commit, base)):
                targets.append(
                    await fresh_proxy(
                        workdir,
                        f"{config}-{tree}",
                        upstream,
                        procs,
                        defaults=config == "defaults",
                        source=source,
                    )
                )
        for c in (int(c) for c in args.concurrency.split(",")):
            print(f"measuring c={c}", flush=True)
            s = await interleaved(targets, CHAT, c, args.reps, args.duration)
            for config in args.configs.split(","):
                this, other = s[f"{config}-this"], s[f"{config}-{commit}"]
                for figure, pick, diff in (
                    ("added p50 ms", lambda x: x.p50_ms, True),
                    ("CPU ms/call", lambda x: x.cpu_ms_per_call, False),
                    ("calls/s", lambda x: x.calls_per_s, False),
                ):
                    a = added(s["direct"], this, pick) if diff else med(this, pick)
                    b = added(s["direct"], other, pick) if diff else med(other, pick)
                    rows.append(
                        {
                            "figure": f"c={c} {config} {figure}",
                            commit: round(b, 3),
                            "this tree": round(a, 3),
                            "change": f"{(a / b - 1) * 100:+.0f}%" if b else "",
                        }
                    )
    finally:
        for proc in reversed(procs):
            proc.stop()
    return rows


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.against", description=__doc__)
    parser.add_argument("rev", nargs="?", default="HEAD", help="the revision to compare with")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per measurement")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse())

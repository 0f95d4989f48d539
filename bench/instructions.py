"""Instructions the proxy executes per call, counted by valgrind's callgrind.

Run: ``uv run python -m bench.instructions`` (``--against REV`` adds the same rows for another
revision, checked out into a temporary git worktree; ``--calls N`` per row).

CPU time per call moves with the machine: on a shared or virtual one, the same proxy measured
twice an hour apart differs by more than most changes make. The number of instructions it
executes per call does not (two runs of the same tree agree to 0.1%), so this is the figure
to judge a change to the proxy's own work by. It counts user space only: system calls (an
fsync, a socket write) cost time the count does not show, which ``bench.proxy`` and
``bench.against`` measure.

Each row starts one proxy under ``valgrind --tool=callgrind --instr-atstart=no``, warms it up
with calls of its own, turns counting on (``callgrind_control -i on``), makes ``--calls`` calls
one at a time, turns it off and divides. Every thread of the proxy is counted (callgrind runs
them one at a time). The upstream and the load are the ones of ``bench.proxy``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._load import closed_loop
from bench._procs import Proc, free_port, start_proxy, start_upstream, write_config
from bench._report import report
from bench.proxy import CHAT, LOAD_CORE, PROXY_CORE, STREAM, Target

REPO = Path(__file__).parent.parent
# (name, ledger + receipts durability as the proxy ships them, access log on)
CONFIGS: tuple[tuple[str, bool, bool], ...] = (
    ("normal-group", False, True),
    ("normal-group, access log off", False, False),
    ("defaults", True, True),
)


def _control(*command: str | int) -> None:
    subprocess.run(["callgrind_control", *map(str, command)], check=True, capture_output=True)


def _totals(out: Path) -> int:
    """The instructions of the dumps callgrind wrote under ``out`` (counting was on only
    while the measured calls ran)."""
    total = 0
    for dump in out.parent.glob(out.name + "*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total


async def per_call(
    workdir: Path,
    upstream: Proc,
    name: str,
    *,
    defaults: bool,
    access_log: bool,
    body: bytes,
    calls: int,
    source: Path | None,
) -> float:
    config = workdir / f"{name}.toml"
    port = free_port()
    keys = write_config(
        config, port=port, upstream_port=upstream.port, tenants=10, keyed=10, defaults=defaults
    )
    if not access_log:
        text = config.read_text()
        config.write_text(text.replace("[ledger]", "[observability]\naccess_log = false\n[ledger]"))
    out = workdir / f"{name}.callgrind"
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    proc = start_proxy(config, port, PROXY_CORE, timeout_s=600, source=source, wrapper=wrapper)
    try:
        target = Target(name, port, proc.pid, keys)
        requests = target.requests(body)
        await closed_loop(port, requests, concurrency=1, duration_s=3.0)  # warm-up, uncounted
        await asyncio.to_thread(_control, "-i", "on", proc.pid)
        done = 0
        while done < calls:
            run = await closed_loop(port, requests, concurrency=1, duration_s=1.0)
            done += len(run.latencies_ns)
            if run.errors:
                raise RuntimeError(f"{name}: {run.errors} failed calls, last {run.last_error}")
        await asyncio.to_thread(_control, "-i", "off", proc.pid)
        await asyncio.to_thread(_control, "-d", proc.pid)
    finally:
        proc.stop()
    return _totals(out) / done


async def measure(
    args: argparse.Namespace, workdir: Path, trees: list[tuple[str, Path | None]]
) -> list[dict[str, Any]]:
    upstream = start_upstream(workdir, LOAD_CORE)
    rows: list[dict[str, Any]] = []
    try:
        chosen = args.configs.split(",") if args.configs else [c[0] for c in CONFIGS]
        for config, defaults, access_log in (c for c in CONFIGS if c[0] in chosen):
            for kind, body in (("call", CHAT), ("24-event stream", STREAM)):
                row: dict[str, Any] = {"figure": f"M instructions per {kind}, {config}"}
                for tree, source in trees:
                    name = f"{config}-{kind}-{tree}".replace(" ", "").replace(",", "-")
                    print(f"counting {name}", flush=True)
                    count = await per_call(
                        workdir,
                        upstream,
                        name,
                        defaults=defaults,
                        access_log=access_log,
                        body=body,
                        calls=args.calls,
                        source=source,
                    )
                    row[tree] = round(count / 1e6, 3)
                if len(trees) == 2:
                    this, other = row[trees[0][0]], row[trees[1][0]]
                    row["change"] = f"{(this / other - 1) * 100:+.1f}%"
                rows.append(row)
    finally:
        upstream.stop()
    return rows


def main(args: argparse.Namespace) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("bench.instructions needs valgrind (Debian: apt-get install valgrind)")
    workdir = Path(tempfile.mkdtemp(prefix="aegis-bench-instructions-"))
    trees: list[tuple[str, Path | None]] = [("this tree", None)]
    git = ["git", "-C", str(REPO)]
    base = workdir / "base"
    try:
        if args.against:
            subprocess.run(
                [*git, "worktree", "add", "--detach", str(base), args.against], check=True
            )
            trees.append((args.against, base))
        rows = asyncio.run(measure(args, workdir, trees))
    finally:
        if args.against:
            subprocess.run([*git, "worktree", "remove", "--force", str(base)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
    report(
        "instructions",
        rows,
        note=f"callgrind, user space, every thread of the proxy; {args.calls} calls per row, "
        "one at a time, after a 3 s warm-up",
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--against", help="also count this revision (a git worktree)")
    parser.add_argument("--calls", type=int, default=200, help="counted calls per row")
    parser.add_argument(
        "--configs", help=f"comma-separated, of: {'; '.join(c[0] for c in CONFIGS)} (default: all)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse())

"""``python -m demo``: the real proxy over a simulated upstream, and a menu to drive it.

With ``--script``, or when stdin is not a terminal (piped input, CI), the guided tour runs end
to end instead of the menu. ``OPENAI_API_KEY`` / ``GEMINI_API_KEY`` switch that provider from
simulated to real.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from demo.stack import Stack
from demo.ui import Demo


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument(
        "--script", action="store_true", help="run the guided tour non-interactively"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".aegis/demo"),
        help="config, ledger, receipts and proxy log (emptied at start; default: .aegis/demo)",
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="scale the simulated upstream's latency (0: none)",
    )
    parser.add_argument("--width", type=int, default=None, help="terminal width to render at")
    parser.add_argument(
        "--svg", type=Path, default=None, help="also save the screen as an SVG (with --script)"
    )
    return parser


def _verifier(stack: Stack) -> str:
    """The verifier as a command that works from the user's shell: ``make demo`` runs inside
    ``uv run``, whose ``.venv/bin`` is on the demo's PATH but not on the user's afterwards,
    so the script is named by its path."""
    script = Path(sys.executable).parent / "aegis-receipts"
    return stack.shown(script) if script.exists() else f"{sys.executable} -m aegis.core.cli"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scripted = args.script or not sys.stdin.isatty()
    width = args.width or (None if sys.stdout.isatty() else 110)
    console = Console(width=width, record=args.svg is not None, highlight=False)
    stack = Stack(args.workdir, latency_scale=args.latency_scale)
    console.print("Starting the simulated upstream and aegis-proxy ...")
    demo = Demo(stack, console)
    code = 0
    try:
        stack.start()
        if scripted:
            verdict = demo.tour()
            # The tour ends by tampering: the verifier must have caught it.
            code = 0 if verdict == 1 else 1
        else:
            demo.menu()
    except (KeyboardInterrupt, EOFError):
        console.print()
    finally:
        stack.stop()
    console.print(
        f"Stopped. The config, ledger, receipts and proxy log stay in {stack.shown(stack.workdir)}"
        f"; verify the trail again with:\n  AEGIS_RECEIPT_KEYS={stack.verify_keys} "
        f"{_verifier(stack)} verify {stack.shown(stack.receipts_dir)}"
    )
    if args.svg is not None:
        console.save_svg(str(args.svg), title="python -m demo --script")
    return code


if __name__ == "__main__":
    raise SystemExit(main())

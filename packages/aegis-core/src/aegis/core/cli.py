"""``aegis-receipts``: verify, show, summarize and re-price receipt trails.

``verify PATH...`` exits 0 only when the trail is intact (see :mod:`aegis.core.verify` for the
other exit codes). Verification keys come from ``AEGIS_RECEIPT_KEYS`` and ``--key-file``
(see :mod:`aegis.core.keyring`), never from the command line. ``show`` and ``summarize`` read
without verifying, and say so. ``reprice PATH... [--prices FILE]`` verifies, then recomputes
every charge from the price tables the trail carries (or from FILE) and lists differences.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from aegis.core.errors import ConfigError
from aegis.core.keyring import KEYS_ENV, Keyring
from aegis.core.money import format_usd
from aegis.core.pricing import PricingTable
from aegis.core.reprice import reprice_trail
from aegis.core.trail import find_trail_files, iter_records
from aegis.core.verify import (
    EXIT_INTACT,
    EXIT_TAMPERED,
    EXIT_TORN,
    EXIT_TRUNCATED,
    EXIT_USAGE,
    VerifyReport,
    plain_usd,
    verify_trail,
)

__all__ = ["main"]

_VERDICTS = {0: "INTACT", 1: "TAMPERED", 3: "TORN", 4: "TRUNCATED"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis-receipts",
        description="Verify, show and summarize Aegis receipt trails.",
        epilog=f"Keys: {KEYS_ENV}=KEY_ID:env:VAR,KEY_ID:file:PATH,KEY_ID:ed25519:PUBKEY and/or"
        " --key-file (JSON). Secrets are never taken from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify",
        help="check signatures, the chain, checkpoints and torn tails",
        description="Exit status: 0 intact, 1 tampered or invalid, 2 usage error,"
        " 3 torn line(s) only, 4 tail cut (shown by a checkpoint).",
    )
    verify.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    verify.add_argument("--key-file", action="append", type=Path, default=[])
    verify.add_argument(
        "--checkpoints", action="append", type=Path, default=[], help="extra checkpoint file"
    )
    verify.add_argument(
        "--allow-torn", action="store_true", help="report torn lines but still exit 0"
    )
    verify.add_argument(
        "--chain-only",
        action="store_true",
        help="do not check receipt signatures (holding only the checkpoint key): receipts are"
        " then authenticated only by the signed checkpoints that cover them",
    )
    verify.add_argument(
        "--trails",
        action="store_true",
        help="each PATH is a trail of its own (one per worker or replica), verified on its own;"
        " the exit status is the worst of them",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: CPUs)"
    )
    verify.add_argument("--max-problems", type=int, default=50, help="problems to print")
    show = sub.add_parser("show", help="print receipts as a table (unverified)")
    show.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    show.add_argument("--tenant", help="only this tenant")
    show.add_argument("--limit", type=int, default=None, help="only the last N receipts")
    show.add_argument("--json", action="store_true", help="one JSON receipt per line")
    summarize = sub.add_parser("summarize", help="spend per tenant/model/day (unverified)")
    summarize.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    summarize.add_argument(
        "--by", default="tenant,model,day", help="grouping columns from tenant, model, day"
    )
    summarize.add_argument("--json", action="store_true")
    reprice = sub.add_parser(
        "reprice",
        help="recompute every charge from the price tables the trail carries",
        description="Exit status: 0 intact and every charge reproduced (with --prices: intact),"
        " 1 tampered, a table that does not match its version, or a charge that differs,"
        " 2 usage error.",
    )
    reprice.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    reprice.add_argument("--key-file", action="append", type=Path, default=[])
    reprice.add_argument(
        "--prices",
        type=Path,
        help="re-price against this table instead (a JSON or TOML file in the price-override"
        " shape with as_of and models, as `aegis-proxy prices --json` prints)",
    )
    reprice.add_argument("--json", action="store_true", help="print the report as JSON")
    reprice.add_argument("--max-differences", type=int, default=50)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aegis-receipts`` console script."""
    args = _parser().parse_args(argv)
    try:
        for path in args.paths:
            if not path.exists():
                raise ConfigError(f"{path}: no such file or directory")
        if args.command == "verify":
            return _verify(args)
        if args.command == "show":
            return _show(args)
        if args.command == "reprice":
            return _reprice(args)
        return _summarize(args)
    except ConfigError as exc:
        print(f"aegis-receipts: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"aegis-receipts: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE


def _keyring(key_files: list[Path]) -> Keyring:
    ring = Keyring.from_spec(os.environ.get(KEYS_ENV, ""))
    for path in key_files:
        ring = ring.merged(Keyring.from_key_file(path))
    if not len(ring):
        raise ConfigError(f"no verification keys: set {KEYS_ENV} or pass --key-file")
    return ring


def _verify(args: argparse.Namespace) -> int:
    keyring = _keyring(args.key_file)
    trails = [[path] for path in args.paths] if args.trails else [args.paths]
    reports = []
    for paths in trails:
        report = verify_trail(
            paths,
            keyring,
            checkpoints=args.checkpoints,
            allow_torn=args.allow_torn,
            jobs=args.jobs,
            receipt_signatures=not args.chain_only,
        )
        reports.append((paths, report))
        if not args.json:
            if args.trails:
                print(f"== {paths[0]}")
            _print_report(report, args.max_problems)
    if args.json:
        out: Any = [r.to_dict() for _, r in reports] if args.trails else reports[0][1].to_dict()
        print(json.dumps(out, indent=2))
    # The worst verdict decides: any tampered trail makes the whole answer tampered.
    return max((r.exit_code for _, r in reports), key=_SEVERITY.index)


_SEVERITY: Final = (EXIT_INTACT, EXIT_TORN, EXIT_TRUNCATED, EXIT_TAMPERED)
"""Exit codes from best to worst: intact, torn only, tail cut, tampered."""


def _reprice(args: argparse.Namespace) -> int:
    keyring = _keyring(args.key_file)
    prices = None
    if args.prices is not None:
        with args.prices.open("rb") as f:
            data = json.load(f) if args.prices.suffix == ".json" else tomllib.load(f)
        prices = PricingTable.from_dict(data)
    report = reprice_trail(args.paths, keyring, prices=prices)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return report.exit_code
    for problem in report.verify.problems[: args.max_differences]:
        print(f"{problem.where}: [{problem.kind}] {problem.message}")
    for message in report.problems:
        print(f"price table: {message}")
    for d in report.differences[: args.max_differences]:
        repriced = "-" if d.repriced_usd is None else f"${d.repriced_usd}"
        why = f" ({d.reason})" if d.reason else ""
        print(f"{d.where}: {d.model}: recorded ${d.recorded_usd}, re-priced {repriced}{why}")
    hidden = len(report.differences) - args.max_differences
    if hidden > 0:
        print(f"... and {hidden} more difference(s) (--json)")
    for version, as_of in report.tables.items():
        print(f"table:       {version} (as of {as_of})")
    if report.against is not None:
        print(f"against:     {report.against}")
    print(f"receipts:    {report.receipts} re-priced")
    print(f"recorded:    ${format_usd(report.recorded_nanos)}")
    print(f"re-priced:   ${format_usd(report.repriced_nanos)}")
    verdict = "INTACT" if report.verify.exit_code == EXIT_INTACT else "NOT VERIFIED"
    print(f"result:      {verdict}, {len(report.differences)} difference(s)")
    return report.exit_code


def _print_report(report: VerifyReport, max_problems: int) -> None:
    s = report.summary
    for problem in report.problems[:max_problems]:
        print(f"{problem.where}: [{problem.kind}] {problem.message}")
    hidden = len(report.problems) - max_problems
    if hidden > 0:
        print(f"... and {hidden} more problem(s) (--max-problems, --json)")
    print(f"chain:       {s.chain_id or '-'} ({s.files} file(s)), head seq {s.head_seq}")
    print(f"receipts:    {s.receipts} verified")
    print(f"tenants:     {s.tenants}")
    print(f"total spend: ${plain_usd(s.total_usd)}")
    print(f"first/last:  {s.first_at or '-'} / {s.last_at or '-'}")
    print(f"checkpoints: {s.checkpoints} verified, covering {s.covered} receipt(s)")
    for note in report.notes:
        print(f"note: {note}")
    code = report.exit_code
    verdict = _VERDICTS.get(code, str(code))
    if code == EXIT_INTACT and report.problems:
        verdict += " (torn lines allowed)"
    print(f"result:      {verdict} ({len(report.problems)} problem(s))")


def _records(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for where, record, problem in iter_records(find_trail_files(paths)):
        if record is None:
            print(f"aegis-receipts: skipped {where}: {problem}", file=sys.stderr)
        else:
            out.append((where, record))
    print("aegis-receipts: read without verifying; run `verify` to trust it", file=sys.stderr)
    return out


def _s(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in
              enumerate(headers)]  # fmt: skip

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(fmt(headers))
    for row in rows:
        print(fmt(row))


def _show(args: argparse.Namespace) -> int:
    records = [
        r
        for _, r in _records(args.paths)
        if args.tenant is None or r.get("tenant_id") == args.tenant
    ]
    if args.limit is not None:
        records = records[-args.limit :] if args.limit > 0 else []
    if args.json:
        for record in records:
            print(json.dumps(record, sort_keys=True, ensure_ascii=False))
        return 0
    rows = []
    for r in records:
        raw_decision = r.get("decision")
        decision: dict[str, Any] = raw_decision if isinstance(raw_decision, dict) else {}
        verdict = "allowed" if decision.get("allowed") else f"denied:{_s(decision.get('reason'))}"
        if decision.get("budget"):
            verdict += f"({decision['budget']})"
        rows.append(
            [
                _s(r.get("seq")),
                _s(r.get("finished_at")),
                _s(r.get("tenant_id")),
                f"{_s(r.get('provider'))}/{_s(r.get('model'))}",
                _s(r.get("status")),
                verdict,
                _s(r.get("actual_usd")),
                _s(r.get("request_id")),
            ]
        )
    _table(
        ["seq", "finished_at", "tenant", "provider/model", "status", "decision", "usd", "request"],
        rows,
        right={0, 6},
    )
    return 0


def _summarize(args: argparse.Namespace) -> int:
    columns = [c.strip() for c in args.by.split(",") if c.strip()]
    if not columns or any(c not in ("tenant", "model", "day") for c in columns):
        raise ConfigError("--by takes a comma-separated list of tenant, model, day")
    groups: dict[tuple[str, ...], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0)])
    for where, r in _records(args.paths):
        if r.get("status") == "alert":  # a budget alert, not a call
            continue
        values = {
            "tenant": _s(r.get("tenant_id")),
            "model": _s(r.get("model")),
            "day": _s(r.get("finished_at"))[:10],
        }
        try:
            spend = Decimal(str(r.get("actual_usd", "0")))
        except InvalidOperation:
            print(f"aegis-receipts: skipped {where}: actual_usd is not a decimal", file=sys.stderr)
            continue
        group = groups[tuple(values[c] for c in columns)]
        group[0] += 1
        group[1] += 1 if r.get("status") == "denied" else 0
        group[2] += spend
    ordered = sorted(groups.items())
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **dict(zip(columns, k, strict=True)),
                        "receipts": n,
                        "denied": d,
                        "usd": plain_usd(u),
                    }
                    for k, (n, d, u) in ordered
                ],
                indent=2,
            )
        )
        return 0
    rows = [[*k, str(n), str(d), plain_usd(u)] for k, (n, d, u) in ordered]
    total_n = sum(n for n, _, _ in groups.values())
    total_d = sum(d for _, d, _ in groups.values())
    total_u = sum((u for _, _, u in groups.values()), Decimal(0))
    rows.append(
        ["TOTAL", *([""] * (len(columns) - 1)), str(total_n), str(total_d), plain_usd(total_u)]
    )
    n = len(columns)
    _table([*columns, "receipts", "denied", "usd"], rows, right={n, n + 1, n + 2})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

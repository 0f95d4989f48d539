"""``aegis-proxy``: serve, make keys, check a config file, show prices, read and operate the
ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Final

from aiohttp import web
from yarl import URL

from aegis.core import AegisError, compare_price_file
from aegis.proxy.access_log import ACCESS_LOGGER, BufferedLineHandler
from aegis.proxy.app import create_app
from aegis.proxy.auth import hash_key, new_key
from aegis.proxy.config import ConfigProblems, Settings, load_settings, settings_from_env
from aegis.proxy.ledger_cli import accept_loss, read_statement
from aegis.proxy.prices import format_prices, load_pricing
from aegis.proxy.reload import watch_config
from aegis.proxy.workers import default_workers, supervise

__all__ = ["main"]


def _access_log_to_stdout() -> None:
    # Access lines are JSON documents on their own (no prefix), one per line on stdout.
    access = logging.getLogger(ACCESS_LOGGER)
    handler = BufferedLineHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.propagate = False


def _settings(config: str | None) -> Settings:
    path = config or os.environ.get("AEGIS_CONFIG")
    if path:
        return load_settings(path)
    return settings_from_env()


_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def _shown(url: URL) -> str:
    """The URL without any user or password in it."""
    return str(url.with_user(None)) if url.user or url.password else str(url)


def _upstreams_ok(settings: Settings, host: str, port: int, *, announce: bool) -> bool:
    """Say where each provider is (an upstream taken from the environment is never a
    surprise); ``False`` when one is this proxy itself."""
    for provider in settings.providers.values():
        url = URL(provider.base_url)
        if url.port == port and url.host in {host, *_LOOPBACK}:
            # OPENAI_BASE_URL set for a client of this proxy, then inherited by the proxy.
            print(
                f"aegis-proxy: provider {provider.name!r} would call this proxy itself "
                f"({_shown(url)}); set its base_url in the config, or unset "
                f"{provider.type.upper()}_BASE_URL for the proxy",
                file=sys.stderr,
            )
            return False
        if announce:
            print(
                f"aegis-proxy: provider {provider.name} ({provider.type}) -> {_shown(url)}",
                file=sys.stderr,
            )
    return True


def serve(
    config: str | None,
    host: str | None,
    port: int | None,
    workers: int | None = None,
    reuse_port: bool = False,
) -> int:
    try:
        settings = _settings(config)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    count = settings.server.workers if workers is None else workers
    count = count or default_workers()
    host = host or settings.server.host
    port = port if port is not None else settings.server.port
    # Workers (started with --reuse-port) check again but do not repeat the announcement.
    if not _upstreams_ok(settings, host, port, announce=not reuse_port):
        return 2
    if count > 1:
        if port == 0:
            print("aegis-proxy: --workers needs a fixed --port", file=sys.stderr)
            return 2
        args = ["--host", host, "--port", str(port), "--workers", "1", "--reuse-port"]
        if config:
            args = ["--config", config, *args]
        return supervise(args, count, settings.server.drain_timeout_s)
    if not settings.tenants:
        print(
            "aegis-proxy: no tenants are configured, so every call will be refused (401).\n"
            "Make a key with:  aegis-proxy keys create --tenant my-team\n"
            "and put the printed lines in your config (or .aegis/tenants.toml).",
            file=sys.stderr,
        )
    app = create_app(settings)
    if settings.source is not None:
        app.cleanup_ctx.append(watch_config(settings.source))  # type: ignore[arg-type]
    web.run_app(
        app,
        host=host,
        port=port,
        loop=event_loop(settings.server.event_loop),
        reuse_port=reuse_port or None,
        shutdown_timeout=settings.server.drain_timeout_s,
        access_log=None,
        print=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    return 0


def event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """The loop to serve on: uvloop (libuv's, about a fifth less CPU per call) when chosen or,
    with ``auto``, when installed; else asyncio's own."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def keys_create(tenant: str | None, admin: bool = False) -> int:
    key = new_key()
    if admin:
        print(f"New admin key (shown once, store it now):\n\n    {key}\n")
        print("Put its hash in the config (only the hash is stored):\n")
        print(f'[admin]\napi_keys = ["{hash_key(key)}"]')
        return 0
    print(f"New API key for tenant {tenant!r} (shown once, store it now):\n\n    {key}\n")
    print("Put its hash in the config (only the hash is stored):\n")
    print(f'[tenants.{tenant}]\napi_keys = ["{hash_key(key)}"]')
    return 0


def check_config(path: str) -> int:
    try:
        settings = load_settings(path)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}")
        return 1
    try:
        load_pricing(settings)
    except AegisError as exc:
        print(f"{path}: {exc}")
        return 1
    print(f"{path}: ok ({len(settings.providers)} providers, {len(settings.tenants)} tenants)")
    return 0


def ledger_command(config: str | None, tenant: str | None) -> int:
    """``usage TENANT`` (with a tenant) or ``ledger accept-loss`` (without)."""
    try:
        settings = _settings(config)
        if tenant is not None:
            print(asyncio.run(read_statement(settings, tenant)))
            return 0
        epoch = asyncio.run(accept_loss(settings))
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    except AegisError as exc:
        print(f"aegis-proxy: {exc}", file=sys.stderr)
        return 1
    print(f"new ledger epoch {epoch}: replicas serve again, counting spend from what Redis holds")
    return 0


def prices_command(config: str | None, check: Path | None = None, as_json: bool = False) -> int:
    """Print the effective price table (the bundled one with the price file applied), or with
    ``check`` compare it to a genai-prices or LiteLLM JSON price file (exit 1 on differences)."""
    try:
        table, overrides = load_pricing(_settings(config))
        data = None
        if check is not None:
            with check.open("rb") as f:
                data = json.load(f)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    except AegisError as exc:
        print(f"aegis-proxy: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"aegis-proxy: {check}: {exc}", file=sys.stderr)
        return 2
    if data is None:
        print(json.dumps(table.to_dict(), indent=2) if as_json else format_prices(table, overrides))
        return 0
    differences, missing = compare_price_file(table, data)
    if as_json:
        doc = {
            "version": table.version,
            "differences": [
                {"model": d.model, "field": d.field, "ours": d.ours, "theirs": d.theirs}
                for d in differences
            ],
            "not_in_file": missing,
        }
        print(json.dumps(doc, indent=2))
    else:
        for d in differences:
            print(f"{d.model}: {d.field}: ours {d.ours or '-'}, file {d.theirs or '-'}")
        if missing:
            print(f"not in the file: {', '.join(missing)}")
        print(f"{len(differences)} difference(s) against {check}")
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aegis-proxy", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    p_serve = sub.add_parser("serve", help="run the proxy (the default)")
    for p in (parser, p_serve):
        p.add_argument("--config", help="TOML config file (default: $AEGIS_CONFIG)")
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument(
            "--workers",
            type=int,
            help="processes serving the port (0: one per core; default: [server] workers)",
        )
        p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p_keys = sub.add_parser("keys", help="manage virtual API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="make a new key for a tenant")
    who = p_create.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant")
    who.add_argument("--admin", action="store_true", help="a key for /admin/ and /dashboard")
    p_check = sub.add_parser("check-config", help="validate a config file")
    p_check.add_argument("path", type=Path)
    p_prices = sub.add_parser("prices", help="the effective price table and its version")
    p_prices.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="compare with a genai-prices (data.json) or LiteLLM JSON price file",
    )
    p_prices.add_argument("--json", action="store_true", help="print as JSON")
    p_usage = sub.add_parser("usage", help="a tenant's spend and reservations per window")
    p_usage.add_argument("tenant")
    p_ledger = sub.add_parser("ledger", help="operate the ledger")
    ledger_sub = p_ledger.add_subparsers(dest="ledger_command", required=True)
    p_accept = ledger_sub.add_parser("accept-loss", help="serve again after Redis lost its data")
    for p in (p_usage, p_accept, p_prices):
        p.add_argument("--config", help="TOML config file (default: $AEGIS_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("AEGIS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _access_log_to_stdout()
    if args.command == "keys":
        return keys_create(args.tenant, admin=args.admin)
    if args.command == "check-config":
        return check_config(str(args.path))
    if args.command == "prices":
        return prices_command(args.config, args.check, args.json)
    if args.command in ("usage", "ledger"):
        return ledger_command(args.config, args.tenant if args.command == "usage" else None)
    return serve(args.config, args.host, args.port, args.workers, args.reuse_port)


if __name__ == "__main__":
    raise SystemExit(main())

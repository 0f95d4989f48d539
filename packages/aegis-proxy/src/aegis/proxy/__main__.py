"""``aegis-proxy``: serve, make keys, check a config file, show prices, read and operate the
ledger."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Final

from aiohttp import web
from yarl import URL

from aegis.core import AegisError
from aegis.proxy.access_log import ACCESS_LOGGER, BufferedLineHandler
from aegis.proxy.app import create_app
from aegis.proxy.auth import hash_key, new_key
from aegis.proxy.config import ConfigProblems, Settings, load_settings, settings_from_env
from aegis.proxy.ledger_cli import accept_loss, read_statement
from aegis.proxy.prices import format_prices, load_pricing
from aegis.proxy.reload import watch_config

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


def serve(config: str | None, host: str | None, port: int | None) -> int:
    try:
        settings = _settings(config)
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    if not settings.tenants:
        print(
            "aegis-proxy: no tenants are configured, so every call will be refused (401).\n"
            "Make a key with:  aegis-proxy keys create --tenant my-team\n"
            "and put the printed lines in your config (or .aegis/tenants.toml).",
            file=sys.stderr,
        )
    bind_host = host or settings.server.host
    bind_port = port if port is not None else settings.server.port
    for provider in settings.providers.values():
        url = URL(provider.base_url)
        if url.port == bind_port and url.host in {bind_host, *_LOOPBACK}:
            # OPENAI_BASE_URL set for a client of this proxy, then inherited by the proxy.
            print(
                f"aegis-proxy: provider {provider.name!r} would call this proxy itself "
                f"({_shown(url)}); set its base_url in the config, or unset "
                f"{provider.type.upper()}_BASE_URL for the proxy",
                file=sys.stderr,
            )
            return 2
        # Said at start: an upstream taken from the environment is never a surprise.
        print(
            f"aegis-proxy: provider {provider.name} ({provider.type}) -> {_shown(url)}",
            file=sys.stderr,
        )
    app = create_app(settings)
    if settings.source is not None:
        app.cleanup_ctx.append(watch_config(settings.source))  # type: ignore[arg-type]
    web.run_app(
        app,
        host=bind_host,
        port=bind_port,
        shutdown_timeout=settings.server.drain_timeout_s,
        access_log=None,
        print=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    return 0


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


def prices_command(config: str | None) -> int:
    """Print the effective price table (the bundled one with the price file applied)."""
    try:
        table, overrides = load_pricing(_settings(config))
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    except AegisError as exc:
        print(f"aegis-proxy: {exc}", file=sys.stderr)
        return 2
    print(format_prices(table, overrides))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aegis-proxy", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    p_serve = sub.add_parser("serve", help="run the proxy (the default)")
    for p in (parser, p_serve):
        p.add_argument("--config", help="TOML config file (default: $AEGIS_CONFIG)")
        p.add_argument("--host")
        p.add_argument("--port", type=int)
    p_keys = sub.add_parser("keys", help="manage virtual API keys")
    keys_sub = p_keys.add_subparsers(dest="keys_command", required=True)
    p_create = keys_sub.add_parser("create", help="make a new key for a tenant")
    who = p_create.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant")
    who.add_argument("--admin", action="store_true", help="a key for /admin/ and /dashboard")
    p_check = sub.add_parser("check-config", help="validate a config file")
    p_check.add_argument("path", type=Path)
    p_prices = sub.add_parser("prices", help="the effective price table and its version")
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
        return prices_command(args.config)
    if args.command in ("usage", "ledger"):
        return ledger_command(args.config, args.tenant if args.command == "usage" else None)
    return serve(args.config, args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())

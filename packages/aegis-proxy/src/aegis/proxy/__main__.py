"""``aegis-proxy``: serve, make keys, check a config file, show prices, read and operate the
ledger, move tenants between the config file and the control-plane store."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from contextlib import suppress
from pathlib import Path
from typing import Final

from aiohttp import web
from yarl import URL

from aegis.core import AegisError, compare_price_file
from aegis.proxy import store_cli
from aegis.proxy.access_log import ACCESS_LOGGER, BufferedLineHandler
from aegis.proxy.admin_client import AdminClient, AdminClientError
from aegis.proxy.app import create_app
from aegis.proxy.auth import hash_key, new_key
from aegis.proxy.config import ConfigProblems, Settings, load_settings, settings_from_env
from aegis.proxy.guard import ConnectionGuard, GuardedSite, GuardLimits, default_max_connections
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
        if settings.ledger.backend == "memory":
            # Each worker would hold budgets of its own: N times the limit.
            print(
                "aegis-proxy: --workers needs a ledger the workers share "
                '([ledger] backend = "sqlite" or "redis"), not "memory"',
                file=sys.stderr,
            )
            return 2
        args = ["--host", host, "--port", str(port), "--workers", "1", "--reuse-port"]
        if config:
            args = ["--config", config, *args]
        return supervise(args, count, settings.server.drain_timeout_s)
    if not settings.tenants:
        if settings.store.backend == "none":
            where = "so every call will be refused (401)"
        else:
            where = "only tenants of the control-plane store can call (none: 401)"
        print(
            f"aegis-proxy: no tenants are configured in the file, {where}.\n"
            "Make a key with:  aegis-proxy keys create --tenant my-team\n"
            "and put the printed lines in your config (or .aegis/tenants.toml), or create\n"
            "tenants and keys through the admin API (POST /admin/tenants).",
            file=sys.stderr,
        )
    app = create_app(settings)
    if settings.source is not None:
        app.cleanup_ctx.append(watch_config(settings.source))
    loop = event_loop(settings.server.event_loop)
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, settings, host, port, reuse_port))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass  # SIGTERM/SIGINT: drain below
    finally:
        main.cancel()
        with suppress(asyncio.CancelledError, web.GracefulExit):
            loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0


async def _serve(
    app: web.Application, settings: Settings, host: str, port: int, reuse_port: bool
) -> None:
    """Serve until a signal (as ``web.run_app`` does), with every connection guarded."""
    server = settings.server
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=server.drain_timeout_s, handle_signals=True
    )
    await runner.setup()
    try:
        limits = GuardLimits(
            max_connections=server.max_connections or default_max_connections(),
            max_per_client=server.max_connections_per_client,
            header_timeout_s=server.header_timeout_s,
        )
        site = GuardedSite(
            runner, ConnectionGuard(limits), host=host, port=port, reuse_port=reuse_port or None
        )
        await site.start()
        print(f"======== Running on {site.name} ========", file=sys.stderr, flush=True)
        await asyncio.Event().wait()  # until a signal ends the loop's run
    finally:
        await runner.cleanup()


def event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """The loop to serve on: uvloop (libuv's, about a tenth less CPU per call) when chosen or,
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


def keys_create(tenant: str | None, admin: bool = False, metrics: bool = False) -> int:
    key = new_key()
    if metrics:
        print(f"New metrics key (shown once, store it now):\n\n    {key}\n")
        print("Put its hash in the config, and the key in Prometheus' scrape config")
        print("(authorization: {credentials: <key>}):\n")
        print(f'[observability]\nmetrics_keys = ["{hash_key(key)}"]')
        return 0
    if admin:
        print(f"New admin key (shown once, store it now):\n\n    {key}\n")
        print("Put its hash in the config (only the hash is stored):\n")
        print(f'[admin]\napi_keys = ["{hash_key(key)}"]')
        return 0
    print(f"New API key for tenant {tenant!r} (shown once, store it now):\n\n    {key}\n")
    print("Put its hash in the config (only the hash is stored):\n")
    print(f'[tenants.{tenant}]\napi_keys = ["{hash_key(key)}"]')
    return 0


def remote_command(args: argparse.Namespace) -> int:
    """``tenants list|show|create`` and ``keys create|list|revoke|rotate`` with ``--url``."""
    try:
        client = AdminClient(args.url)
        if args.command == "tenants":
            if args.tenants_command == "list":
                for t in client.call("GET", "/admin/tenants?limit=10000")["tenants"]:
                    print(
                        f"{t['tenant_id']}\t{t['source']}\tversion {t['version']}\t"
                        f"{t['policy_version']}"
                    )
            elif args.tenants_command == "show":
                print(json.dumps(client.call("GET", client.tenant_path(args.tenant)), indent=2))
            elif args.tenants_command == "create":
                policy = json.loads(args.policy) if args.policy else {}
                made = client.call(
                    "POST", "/admin/tenants", {"tenant_id": args.tenant, "policy": policy}
                )
                print(f"created tenant {made['tenant_id']} (version {made['version']})")
            else:
                print(
                    f"aegis-proxy: tenants {args.tenants_command} works on the store (--config)",
                    file=sys.stderr,
                )
                return 2
            return 0
        keys = client.tenant_path(args.tenant) + "/keys"
        if args.keys_command == "create":
            made = client.call("POST", keys, {"name": args.name} if args.name else {})
            print(f"New API key {made['key_id']} for tenant {args.tenant!r} (shown once):")
            print(f"\n    {made['key']}")
        elif args.keys_command == "list":
            for k in client.call("GET", keys)["keys"]:
                print(f"{k['key_id']}\t{k['prefix']}...\t{k['state']}\t{k['name'] or ''}")
        elif args.keys_command == "revoke":
            client.call("POST", f"{keys}/{args.key_id}/revoke")
            print(f"revoked {args.key_id}")
        else:
            made = client.call("POST", f"{keys}/{args.key_id}/rotate", {"grace_s": args.grace_s})
            print(
                f"New API key {made['key_id']} for tenant {args.tenant!r} (shown once):\n\n"
                f"    {made['key']}\n\n"
                f"{args.key_id} keeps working until {made['old']['revoked_at']}"
            )
        return 0
    except AdminClientError as exc:
        print(f"aegis-proxy: {exc.message}", file=sys.stderr)
        return 1


def store_command(args: argparse.Namespace) -> int:
    """``tenants import|export|list`` and ``keys create --store|list|revoke``."""
    if getattr(args, "url", None):
        return remote_command(args)
    if args.command == "keys" and args.keys_command == "rotate":
        print("aegis-proxy: keys rotate needs --url (a running proxy)", file=sys.stderr)
        return 2
    if args.command == "tenants" and args.tenants_command in ("show", "create"):
        print(
            f"aegis-proxy: tenants {args.tenants_command} needs --url (a running proxy)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = _settings(args.config)
        if args.command == "tenants":
            if args.tenants_command == "import":
                source = None if args.file is None else Path(args.file)
                tenants = store_cli.file_tenants(settings, source)
                imported = store_cli.import_tenants(settings, tenants, replace=args.replace)
                for line in asyncio.run(imported):
                    print(line)
            elif args.tenants_command == "export":
                text = asyncio.run(store_cli.export_tenants(settings))
                if args.output:
                    Path(args.output).write_text(text)
                else:
                    print(text, end="")
            else:
                for line in asyncio.run(store_cli.list_tenants(settings)):
                    print(line)
            return 0
        if args.keys_command == "create":
            key = asyncio.run(store_cli.add_key(settings, args.tenant))
            print(f"New API key for tenant {args.tenant!r} in the store (shown once):\n\n    {key}")
            return 0
        if args.keys_command == "list":
            for line in asyncio.run(store_cli.list_keys(settings, args.tenant)):
                print(line)
            return 0
        if not asyncio.run(store_cli.revoke_key(settings, args.tenant, args.key_id)):
            print(
                f"aegis-proxy: no key {args.key_id!r} for tenant {args.tenant!r}", file=sys.stderr
            )
            return 1
        print(f"revoked {args.key_id}")
        return 0
    except ConfigProblems as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    except AegisError as exc:
        print(f"aegis-proxy: {exc}", file=sys.stderr)
        return 1


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
    who.add_argument("--metrics", action="store_true", help="a key for scraping /metrics")
    p_create.add_argument(
        "--store", action="store_true", help="add it to the control-plane store (not the file)"
    )
    p_klist = keys_sub.add_parser("list", help="a tenant's store keys (prefix and state)")
    p_klist.add_argument("--tenant", required=True)
    p_revoke = keys_sub.add_parser("revoke", help="revoke a store key now")
    p_revoke.add_argument("--tenant", required=True)
    p_revoke.add_argument("key_id")
    p_rotate = keys_sub.add_parser("rotate", help="replace a key; the old one works a while")
    p_rotate.add_argument("--tenant", required=True)
    p_rotate.add_argument("key_id")
    p_rotate.add_argument("--grace-s", type=int, default=3600, help="seconds the old key works")
    p_create.add_argument("--name", help="with --url: the key's name")
    p_tenants = sub.add_parser("tenants", help="tenants in the control-plane store")
    tenants_sub = p_tenants.add_subparsers(dest="tenants_command", required=True)
    p_import = tenants_sub.add_parser("import", help="copy [tenants] of a file into the store")
    p_import.add_argument(
        "--file", help="a TOML file with [tenants.ID] tables (default: the config)"
    )
    p_import.add_argument("--replace", action="store_true", help="overwrite store tenants")
    p_export = tenants_sub.add_parser("export", help="store tenants as [tenants.ID] TOML")
    p_export.add_argument("--output", help="write here (default: stdout)")
    p_tlist = tenants_sub.add_parser("list", help="store tenants, versions and policy versions")
    p_tshow = tenants_sub.add_parser("show", help="one tenant (with --url)")
    p_tshow.add_argument("tenant")
    p_tcreate = tenants_sub.add_parser("create", help="a store tenant (with --url)")
    p_tcreate.add_argument("tenant")
    p_tcreate.add_argument("--policy", help="the policy as JSON, e.g. '{\"budgets\": ...}'")
    store_parsers = (
        p_create,
        p_klist,
        p_revoke,
        p_rotate,
        p_import,
        p_export,
        p_tlist,
        p_tshow,
        p_tcreate,
    )
    for p in store_parsers:
        p.add_argument(
            "--url", help="a running proxy's URL (admin key in AEGIS_ADMIN_KEY); else the store"
        )
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
    for p in (p_usage, p_accept, p_prices, *store_parsers):
        p.add_argument("--config", help="TOML config file (default: $AEGIS_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("AEGIS_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _access_log_to_stdout()
    if args.command == "tenants" or (
        args.command == "keys" and (args.keys_command != "create" or args.store or args.url)
    ):
        if (
            args.command == "keys"
            and args.keys_command == "create"
            and (args.admin or args.metrics)
        ):
            parser.error("--store and --url make tenant keys only")
        return store_command(args)
    if args.command == "keys":
        return keys_create(args.tenant, admin=args.admin, metrics=args.metrics)
    if args.command == "check-config":
        return check_config(str(args.path))
    if args.command == "prices":
        return prices_command(args.config, args.check, args.json)
    if args.command in ("usage", "ledger"):
        return ledger_command(args.config, args.tenant if args.command == "usage" else None)
    return serve(args.config, args.host, args.port, args.workers, args.reuse_port)


if __name__ == "__main__":
    raise SystemExit(main())

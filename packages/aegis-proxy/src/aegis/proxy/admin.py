"""The admin API under ``/admin/``, for operators holding an admin key (``[admin] api_keys``).

A tenant key is refused with 403 on every route here, a missing or unknown key with 401, and a
trusted ``x-tenant-id`` header grants nothing. Answers never carry key hashes, prompts or
secrets.

``GET /admin/tenants?limit=&offset=``, ``GET /admin/tenants/{tenant_id}``
    Tenants (by id, 1000 a page by default) and their policies.
``GET /admin/usage?limit=&offset=``, ``GET /admin/usage/{tenant_id}``
    Each window budget's current spend and reservations (from the ledger), and what receipts
    since the start add up to (outcomes, denials, models, spend per minute); the list puts the
    tenants with the most spend since the start first.
``GET /admin/receipts?tenant=&status=&since=&until=&limit=``
    The latest receipts (newest first, at most ``limit``), each with its verification state.
``POST /admin/verify``, ``GET /admin/verify``
    Run a verification of the whole receipt trail; read the last run.

Managing tenants, policies and keys (``POST/PUT/DELETE /admin/tenants...``) lives in
:mod:`aegis.proxy.admin_control`; ``GET /admin/openapi.json`` describes every route.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from aegis.core import Keyring, Receipt, StoreError, hash_key, verify_trail
from aegis.proxy.auth import presented_key
from aegis.proxy.errors import BadRequest, Forbidden, NotFound, Unauthorized
from aegis.proxy.operator import OPERATOR, Operator
from aegis.proxy.state import CONTROL, GATE, KEYS
from aegis.proxy.usage import tenant_usage

__all__ = [
    "Admin",
    "admin_route",
    "int_param",
    "presented_key",
    "receipt_state",
    "routes",
]

_STATUSES: Final = frozenset({"ok", "denied", "upstream_error", "cancelled"})
_MAX_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class Admin:
    """An authenticated admin request: the operator state and who is acting."""

    operator: Operator
    actor: str
    """Names the admin key (``admin-<8 hex>``, derived from its hash, never the hash itself),
    plus the ``x-aegis-actor`` header when sent: recorded in the receipts of admin changes."""


_ACTOR: Final = re.compile(r"^[\w .@:/+-]{1,100}$")


async def require_admin(request: web.Request) -> Admin:
    """The admin identity, once the request proved it holds an admin key."""
    operator = request.app[OPERATOR]
    key = presented_key(request)
    if not key:
        raise Unauthorized(
            "missing admin key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    digest = hash_key(key)
    if digest in operator.admin_hashes:
        actor = "admin-" + hashlib.sha256(digest.encode()).hexdigest()[:8]
        named = request.headers.get("x-aegis-actor")
        if named is not None:
            if not _ACTOR.match(named):
                raise BadRequest(
                    "x-aegis-actor must be 1-100 letters, digits or ' .@:/+-'",
                    param="x-aegis-actor",
                )
            actor = f"{actor} ({named})"
        return Admin(operator, actor)
    try:
        is_tenant_key = await request.app[KEYS].identify(key) is not None
    except StoreError:
        is_tenant_key = False
    if is_tenant_key:
        raise Forbidden("tenant keys cannot use the admin API", code="admin_key_required")
    raise Unauthorized("invalid admin key", code="invalid_api_key")


AdminHandler = Callable[[web.Request, Operator], Awaitable[web.StreamResponse]]
AdminActionHandler = Callable[[web.Request, Admin], Awaitable[web.StreamResponse]]


def _admin(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        admin = await require_admin(request)
        response = await handler(request, admin.operator)
        response.headers["Cache-Control"] = "no-store"
        return response

    return guarded


def admin_route(
    handler: AdminActionHandler,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Guard a handler that needs to know who acts (the management routes)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        admin = await require_admin(request)
        response = await handler(request, admin)
        response.headers["Cache-Control"] = "no-store"
        return response

    return guarded


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        raise BadRequest(f"{name} must be an integer", param=name) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be {low}-{high}", param=name)
    return value


async def all_usage(request: web.Request, operator: Operator) -> web.StreamResponse:
    """Tenants by spend since the start (then by id), a page at a time."""
    limit = int_param(request, "limit", 100, 1, _MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0, 10**9)
    spend: dict[str, int] = {}
    for (tenant, _provider, _model), nanos in operator.stats.spend_nanos.items():
        spend[tenant] = spend.get(tenant, 0) + nanos
    active = operator.stats.active
    # The file's tenants, and the store's that called since the start.
    tenants = set(operator.tenants) | operator.stats.store_tenants
    order = sorted(tenants, key=lambda t: (t not in active, -spend.get(t, 0), t))
    gate = request.app[GATE]
    plane = request.app[CONTROL]
    usage = []
    for tenant_id in order[offset : offset + limit]:
        policy = await plane.get_policy(tenant_id=tenant_id)
        if policy is not None:
            usage.append(await tenant_usage(gate, operator.stats, policy))
    return web.json_response({"tenants": usage, "total": len(order), "offset": offset})


async def one_usage(request: web.Request, operator: Operator) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    policy = await request.app[CONTROL].get_policy(tenant_id=tenant_id)
    if policy is None:
        raise NotFound(f"no tenant {tenant_id!r}", code="tenant_not_found")
    return web.json_response(await tenant_usage(request.app[GATE], operator.stats, policy))


def _time_param(request: web.Request, name: str) -> datetime | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 time", param=name) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def receipt_state(
    operator: Operator, data: dict[str, Any], previous: tuple[bytes, dict[str, Any]] | None
) -> str:
    """``verified`` (signed with the proxy's key and linked to the receipt before it),
    ``bad_signature`` or ``broken_chain``; ``data`` is a receipt as plain data."""
    signer = operator.signer
    try:
        receipt = Receipt.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return "bad_signature"
    sig = receipt.signature
    if (
        signer is None
        or sig is None
        or sig.key_id != signer.key_id
        or not signer.verify(receipt.signing_bytes(), sig.sig)
    ):
        return "bad_signature"
    if previous is not None:
        line, before = previous
        if (
            before.get("chain_id") == receipt.chain_id
            and before.get("seq") == receipt.seq - 1
            and hashlib.sha256(line).hexdigest() != receipt.prev_hash
        ):
            return "broken_chain"
    return "verified"


async def list_receipts(request: web.Request, operator: Operator) -> web.StreamResponse:
    tenant = request.query.get("tenant") or None
    status = request.query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"status must be one of {sorted(_STATUSES)}", param="status")
    since = _time_param(request, "since")
    until = _time_param(request, "until")
    limit = int_param(request, "limit", 100, 1, _MAX_LIMIT)
    recent = list(operator.stats.recent)
    found: list[dict[str, Any]] = []
    for index in range(len(recent) - 1, -1, -1):
        data = json.loads(recent[index])
        if tenant is not None and data["tenant_id"] != tenant:
            continue
        if status is not None and data["status"] != status:
            continue
        if since is not None or until is not None:
            at = datetime.fromisoformat(data["finished_at"])
            if (since is not None and at < since) or (until is not None and at > until):
                continue
        previous = None
        if index > 0:
            previous = (recent[index - 1], json.loads(recent[index - 1]))
        data["verification"] = receipt_state(operator, data, previous)
        found.append(data)
        if len(found) >= limit:
            break
    return web.json_response({"receipts": found, "kept": len(recent)})


def _verify(operator: Operator) -> dict[str, Any]:
    assert operator.signer is not None
    report = verify_trail([operator.receipts_path], Keyring([operator.signer]))
    return report.to_dict()


async def run_verification(request: web.Request, operator: Operator) -> web.StreamResponse:
    ran_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if operator.receipts_sink == "memory" or operator.signer is None:
        result: dict[str, Any] = {
            "available": False,
            "ran_at": ran_at,
            "note": "the memory receipt sink keeps no trail to verify",
        }
    else:
        async with operator.verifying:
            report = await asyncio.to_thread(_verify, operator)
        result = {"available": True, "ran_at": ran_at, **report}
    operator.last_verification = result
    return web.json_response(result)


async def last_verification(request: web.Request, operator: Operator) -> web.StreamResponse:
    return web.json_response({"last": operator.last_verification})


def routes() -> list[web.RouteDef]:
    from aegis.proxy import admin_control, admin_keys  # they use this module's guards

    return [
        *admin_control.routes(),
        *admin_keys.routes(),
        web.get("/admin/usage", _admin(all_usage)),
        web.get("/admin/usage/{tenant_id}", _admin(one_usage)),
        web.get("/admin/receipts", _admin(list_receipts)),
        web.post("/admin/verify", _admin(run_verification)),
        web.get("/admin/verify", _admin(last_verification)),
    ]

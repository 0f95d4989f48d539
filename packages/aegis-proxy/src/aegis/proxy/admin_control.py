"""Managing tenants, policies and virtual keys through the admin API (admin key only).

``GET/POST /admin/tenants``, ``GET/PUT/DELETE /admin/tenants/{tenant_id}``
    Tenants of the config file (read-only here: ``"read_only": true``) and of the store.
    Policies are validated exactly as ``check-config`` validates them, the error naming the
    field (``policy.budgets.per_window[0].limit_usd``). ``PUT`` and ``DELETE`` name the
    ``version`` they read and get 409 when it moved.
Keys: :mod:`aegis.proxy.admin_keys`, on the helpers here.

Every change writes a signed receipt into the trail first checked to be writable (``status``
``alert``, ``capability`` ``admin:<what>``, ``error`` saying who changed what, from which
policy version to which), so an auditor sees when a limit was raised.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from aegis.core import (
    Decision,
    Outcome,
    Policy,
    TenantRecord,
    new_id,
)
from aegis.proxy.admin import Admin, admin_route, int_param
from aegis.proxy.admin_openapi import document
from aegis.proxy.control_plane import ControlPlane
from aegis.proxy.errors import BadRequest, Conflict, NotFound
from aegis.proxy.state import CONTROL, GATE, SETTINGS

__all__ = ["routes"]

_TENANT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_GRACE_S: Final = 3600
"""How long a rotated key keeps working when the request names no ``grace_s``."""


# -- request bodies ------------------------------------------------------------------------


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        data = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    for name in data:
        if name not in allowed:
            raise BadRequest(
                f"unknown field {name!r} (known: {', '.join(sorted(allowed))})", param=name
            )
    return data


def _version(data: dict[str, Any], *, required: bool = True) -> int | None:
    value = data.get("version")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(
            "version must be the record's version as you read it (an integer from 1): "
            "a change to a record that moved meanwhile is refused with 409",
            param="version",
        )
    return value


def _time(value: object, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO-8601 time or null", param=name)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 time, got {value!r}", param=name) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _policy(request: web.Request, tenant_id: str, data: object) -> Policy:
    """Validate as ``check-config`` does (same messages, the field named)."""
    if not isinstance(data, dict):
        raise BadRequest("policy must be a JSON object (a tenant table's shape)", param="policy")
    if "api_keys" in data:
        raise BadRequest(
            "policy.api_keys: keys are not part of a policy here: create them with "
            f"POST /admin/tenants/{tenant_id}/keys",
            param="policy.api_keys",
        )
    policy = Policy.from_dict(tenant_id, data)  # PolicyError → 400 naming policy.<field>
    providers = request.app[SETTINGS].providers
    for provider in (policy.routing.primary_provider, *policy.routing.fallback_providers):
        if provider is not None and provider not in providers:
            raise BadRequest(
                f"policy.routing: provider {provider!r} is not configured", param="policy.routing"
            )
    return policy


# -- answers -------------------------------------------------------------------------------


def _file_tenant(request: web.Request, admin: Admin, tenant_id: str) -> dict[str, Any] | None:
    tenant = admin.operator.tenants.get(tenant_id)
    if tenant is None:
        return None
    return {
        "tenant_id": tenant_id,
        "source": "file",
        "read_only": True,
        "version": None,
        "api_keys": len(tenant.api_key_hashes),
        "policy_version": tenant.policy.version,
        "policy": tenant.policy.to_dict(),
    }


def _store_tenant(record: TenantRecord, keys: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenant_id": record.tenant_id,
        "source": "store",
        "read_only": False,
        "version": record.version,
        "policy_version": record.policy.version,
        "policy": record.policy.to_dict(),
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
    }
    if keys is not None:
        data["api_keys"] = keys
    return data


def _read_only(tenant_id: str) -> Conflict:
    return Conflict(
        f"tenant {tenant_id!r} is managed in the config file and is read-only here: change "
        "it in the file, or move it into the store with `aegis-proxy tenants import`",
        code="tenant_read_only",
    )


def _plane(request: web.Request) -> ControlPlane:
    plane = request.app[CONTROL]
    if plane.store is None:
        raise Conflict(
            'no control-plane store is configured ([store] backend = "none"): tenants and keys '
            "come from the config file only",
            code="store_disabled",
        )
    return plane


async def _store_tenant_or_404(request: web.Request, admin: Admin, tenant_id: str) -> TenantRecord:
    if tenant_id in admin.operator.tenants:
        raise _read_only(tenant_id)
    plane = _plane(request)
    assert plane.store is not None
    record = await plane.store.get_tenant(tenant_id)
    if record is None:
        raise NotFound(f"no tenant {tenant_id!r}", code="tenant_not_found")
    return record


async def _audit(
    request: web.Request,
    admin: Admin,
    *,
    tenant_id: str,
    what: str,
    description: str,
    policy: Policy | None,
) -> None:
    """The signed receipt of an admin change, in the Gate's trail (not counted as a call)."""
    trail = request.app[GATE].trail
    subject = trail.subject(
        request_id=f"admin:{new_id()}", tenant_id=tenant_id, capability=f"admin:{what}"
    )
    outcome = Outcome(
        decision=Decision(True, "admin_change"),
        status="alert",
        error=f"{admin.actor}: {description}",
    )
    await trail.write(trail.receipt(subject, outcome, policy, trail.pricing()), notify=False)


def _check_trail(request: web.Request) -> None:
    """Refuse a change that could not be receipted (before making it)."""
    request.app[GATE].trail.check()


def _created(data: dict[str, Any]) -> web.Response:
    return web.json_response(data, status=201)


# -- tenants -------------------------------------------------------------------------------


async def list_tenants(request: web.Request, admin: Admin) -> web.StreamResponse:
    limit = int_param(request, "limit", 1000, 1, 10_000)
    offset = int_param(request, "offset", 0, 0, 10**9)
    files = sorted(admin.operator.tenants)
    page: list[dict[str, Any]] = []
    for tenant_id in files[offset : offset + limit]:
        found = _file_tenant(request, admin, tenant_id)
        assert found is not None
        page.append(found)
    total = len(files)
    store = request.app[CONTROL].store
    if store is not None:
        total += await store.count_tenants()
        left = limit - len(page)
        if left > 0:
            start = max(0, offset - len(files))
            records = await store.list_tenants(limit=left, offset=start)
            page.extend(_store_tenant(r) for r in records if r.tenant_id not in files)
    return web.json_response({"tenants": page, "total": total, "offset": offset})


async def get_tenant(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    found = _file_tenant(request, admin, tenant_id)
    if found is not None:
        return web.json_response(found)
    store = request.app[CONTROL].store
    record = None if store is None else await store.get_tenant(tenant_id)
    if record is None or store is None:
        raise NotFound(f"no tenant {tenant_id!r}", code="tenant_not_found")
    keys = await store.list_keys(tenant_id)
    return web.json_response(_store_tenant(record, len(keys)))


async def create_tenant(request: web.Request, admin: Admin) -> web.StreamResponse:
    data = await _body(request, frozenset({"tenant_id", "policy"}))
    tenant_id = data.get("tenant_id")
    if not isinstance(tenant_id, str) or not _TENANT_ID.match(tenant_id):
        raise BadRequest(
            "tenant_id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            param="tenant_id",
        )
    if tenant_id in admin.operator.tenants:
        raise Conflict(
            f"tenant {tenant_id!r} already exists (in the config file)", code="tenant_exists"
        )
    policy = _policy(request, tenant_id, data.get("policy", {}))
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    record = await plane.store.create_tenant(policy)
    plane.forget(tenant_id=tenant_id)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="tenant.create",
        description=f"created tenant {tenant_id!r} with policy {policy.version} (version 1)",
        policy=policy,
    )
    return _created(_store_tenant(record, 0))


async def update_tenant(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    before = await _store_tenant_or_404(request, admin, tenant_id)
    data = await _body(request, frozenset({"policy", "version"}))
    version = _version(data)
    assert version is not None
    if "policy" not in data:
        raise BadRequest("policy is required (the whole new policy)", param="policy")
    policy = _policy(request, tenant_id, data["policy"])
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    record = await plane.store.update_tenant(policy, expected_version=version)
    plane.forget(tenant_id=tenant_id)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="tenant.update",
        description=(
            f"updated the policy of tenant {tenant_id!r}: {before.policy.version} "
            f"(version {version}) -> {policy.version} (version {record.version})"
        ),
        policy=policy,
    )
    return web.json_response(_store_tenant(record))


async def delete_tenant(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    raw = request.query.get("version")
    before = await _store_tenant_or_404(request, admin, tenant_id)
    if raw is None or not raw.isdigit() or int(raw) < 1:
        raise BadRequest(
            "version (a query parameter) must be the tenant's version as you read it",
            param="version",
        )
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    keys = await plane.store.list_keys(tenant_id)
    await plane.store.delete_tenant(tenant_id, expected_version=int(raw))
    plane.forget(tenant_id=tenant_id)
    for key in keys:
        plane.forget(key_hash=key.key_hash)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="tenant.delete",
        description=(
            f"deleted tenant {tenant_id!r} (policy {before.policy.version}, version {raw}) "
            f"and its {len(keys)} key(s)"
        ),
        policy=before.policy,
    )
    return web.json_response({"deleted": tenant_id, "keys_deleted": len(keys)})


async def openapi(request: web.Request, admin: Admin) -> web.StreamResponse:
    return web.json_response(document())


def routes() -> list[web.RouteDef]:
    tenant = "/admin/tenants/{tenant_id}"
    return [
        web.get("/admin/openapi.json", admin_route(openapi)),
        web.get("/admin/tenants", admin_route(list_tenants)),
        web.post("/admin/tenants", admin_route(create_tenant)),
        web.get(tenant, admin_route(get_tenant)),
        web.put(tenant, admin_route(update_tenant)),
        web.delete(tenant, admin_route(delete_tenant)),
    ]

"""Managing virtual keys through the admin API (admin key only).

``GET/POST /admin/tenants/{tenant_id}/keys``, ``GET/PATCH .../keys/{key_id}``,
``POST .../keys/{key_id}/rotate``, ``POST .../keys/{key_id}/revoke``
    Store keys: the key is shown once, on creation and rotation; listings give the prefix and
    metadata, never a hash. A key id of another tenant answers 404, like one that does not
    exist. Every change is an admin receipt (see :mod:`aegis.proxy.admin_control`).
"""

from __future__ import annotations

import time
from typing import Any, Final

from aiohttp import web

from aegis.core import (
    KeyRecord,
    KeyScope,
    Policy,
    PolicyError,
    VersionConflict,
    display_prefix,
    hash_key,
    new_key,
    new_key_id,
)
from aegis.proxy.admin import Admin, admin_route
from aegis.proxy.admin_control import (
    DEFAULT_GRACE_S,
    _audit,
    _body,
    _check_trail,
    _created,
    _iso,
    _plane,
    _store_tenant_or_404,
    _time,
    _version,
)
from aegis.proxy.errors import BadRequest, Conflict, NotFound

__all__ = ["routes"]

_MAX_GRACE_S: Final = 30 * 86_400


def _key(record: KeyRecord, now: float) -> dict[str, Any]:
    """A key's metadata: never its hash."""
    data: dict[str, Any] = {
        "key_id": record.key_id,
        "tenant_id": record.tenant_id,
        "name": record.name,
        "prefix": record.prefix,
        "state": record.state(now),
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "revoked_at": _iso(record.revoked_at),
        "rotated_from": record.rotated_from,
        "version": record.version,
    }
    scope = record.scope
    data["allow_models"] = (
        None if scope is None or scope.allow_models is None else list(scope.allow_models)
    )
    data["per_window"] = [] if scope is None else scope.to_dict()["per_window"]
    return data


_KEY_FIELDS: Final = frozenset({"name", "expires_at", "allow_models", "per_window"})


def _name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 100 or not value.isprintable():
        raise BadRequest("name must be 1-100 printable characters", param="name")
    return value


def _scope(key_id: str, data: dict[str, Any], policy: Policy, base: KeyScope | None) -> KeyScope:
    merged = {} if base is None else base.to_dict()
    if base is not None and base.allow_models is None:
        merged.pop("allow_models", None)
    for name in ("allow_models", "per_window"):
        if name in data:
            if data[name] is None:
                merged.pop(name, None)
            else:
                merged[name] = data[name]
    try:
        return KeyScope.from_dict(key_id, merged, tenant=policy)
    except PolicyError as exc:
        raise BadRequest(f"{exc.field}: {exc.problem}", param=exc.field) from None


async def _key_or_404(request: web.Request, tenant_id: str, key_id: str) -> KeyRecord:
    plane = _plane(request)
    assert plane.store is not None
    record = await plane.store.get_key(key_id)
    # Another tenant's key id answers exactly as one that does not exist.
    if record is None or record.tenant_id != tenant_id:
        raise NotFound(f"no key {key_id!r} for tenant {tenant_id!r}", code="key_not_found")
    return record


def _new_record(tenant_id: str, data: dict[str, Any], policy: Policy) -> tuple[str, KeyRecord]:
    secret = new_key()
    key_id = new_key_id()
    now = time.time()
    expires_at = _time(data.get("expires_at"), "expires_at")
    if expires_at is not None and expires_at <= now:
        raise BadRequest("expires_at must be in the future", param="expires_at")
    scope = _scope(key_id, data, policy, None)
    return secret, KeyRecord(
        key_id=key_id,
        tenant_id=tenant_id,
        key_hash=hash_key(secret),
        prefix=display_prefix(secret),
        created_at=now,
        name=_name(data.get("name")),
        expires_at=expires_at,
        scope=scope if scope.is_narrowing else None,
    )


async def list_keys(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    file_tenant = admin.operator.tenants.get(tenant_id)
    if file_tenant is not None:
        return web.json_response(
            {
                "keys": [],
                "file_keys": len(file_tenant.api_key_hashes),
                "read_only": True,
                "note": "this tenant's keys are hashes in the config file",
            }
        )
    await _store_tenant_or_404(request, admin, tenant_id)
    store = _plane(request).store
    assert store is not None
    now = time.time()
    return web.json_response(
        {"keys": [_key(k, now) for k in await store.list_keys(tenant_id)], "read_only": False}
    )


async def get_key(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    if tenant_id in admin.operator.tenants:
        raise NotFound(
            f"no key {request.match_info['key_id']!r} for tenant {tenant_id!r}",
            code="key_not_found",
        )
    record = await _key_or_404(request, tenant_id, request.match_info["key_id"])
    return web.json_response(_key(record, time.time()))


async def create_key(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    tenant = await _store_tenant_or_404(request, admin, tenant_id)
    data = await _body(request, _KEY_FIELDS)
    secret, record = _new_record(tenant_id, data, tenant.policy)
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    stored = await plane.store.create_key(record)
    plane.forget(key_hash=stored.key_hash)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="key.create",
        description=f"created key {stored.key_id} ({stored.prefix}...) for tenant {tenant_id!r}"
        + _scope_note(stored),
        policy=tenant.policy,
    )
    return _created({"key": secret, **_key(stored, time.time())})


def _scope_note(record: KeyRecord) -> str:
    scope = record.scope
    parts = []
    if record.expires_at is not None:
        parts.append(f"expires {_iso(record.expires_at)}")
    if scope is not None and scope.allow_models is not None:
        parts.append(f"models {list(scope.allow_models)}")
    if scope is not None:
        parts.extend(f"{b['window']} ${b['limit_usd']}" for b in scope.to_dict()["per_window"])
    return f" ({', '.join(parts)})" if parts else ""


async def update_key(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    tenant = await _store_tenant_or_404(request, admin, tenant_id)
    before = await _key_or_404(request, tenant_id, request.match_info["key_id"])
    data = await _body(request, _KEY_FIELDS | {"version"})
    version = _version(data)
    assert version is not None
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = _name(data["name"])
    if "expires_at" in data:
        changes["expires_at"] = _time(data["expires_at"], "expires_at")
    if "allow_models" in data or "per_window" in data:
        scope = _scope(before.key_id, data, tenant.policy, before.scope)
        changes["scope"] = scope if scope.is_narrowing else None
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    stored = await plane.store.update_key(before.with_changes(**changes), expected_version=version)
    plane.forget(key_hash=stored.key_hash)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="key.update",
        description=f"updated key {stored.key_id} of tenant {tenant_id!r}: "
        f"{', '.join(sorted(changes)) or 'nothing'}{_scope_note(stored)} "
        f"(version {version} -> {stored.version})",
        policy=tenant.policy,
    )
    return web.json_response(_key(stored, time.time()))


async def revoke_key(request: web.Request, admin: Admin) -> web.StreamResponse:
    """Revocation always wins: retried against the latest version (no version needed)."""
    tenant_id = request.match_info["tenant_id"]
    tenant = await _store_tenant_or_404(request, admin, tenant_id)
    await _key_or_404(request, tenant_id, request.match_info["key_id"])
    await _body(request, frozenset())
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    for _attempt in range(5):
        before = await _key_or_404(request, tenant_id, request.match_info["key_id"])
        now = time.time()
        revoked_at = now if before.revoked_at is None else min(now, before.revoked_at)
        try:
            stored = await plane.store.update_key(
                before.with_changes(revoked_at=revoked_at), expected_version=before.version
            )
            break
        except VersionConflict:
            continue
    else:
        raise Conflict("the key kept changing; try again", code="version_conflict")
    plane.forget(key_hash=stored.key_hash)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="key.revoke",
        description=f"revoked key {stored.key_id} ({stored.prefix}...) of tenant {tenant_id!r}",
        policy=tenant.policy,
    )
    return web.json_response(_key(stored, time.time()))


async def rotate_key(request: web.Request, admin: Admin) -> web.StreamResponse:
    tenant_id = request.match_info["tenant_id"]
    tenant = await _store_tenant_or_404(request, admin, tenant_id)
    old = await _key_or_404(request, tenant_id, request.match_info["key_id"])
    data = await _body(request, frozenset({"grace_s", "version", "name", "expires_at"}))
    now = time.time()
    if not old.is_valid(now):
        raise Conflict(
            f"key {old.key_id!r} is {old.state(now)}: only a working key can be rotated",
            code="key_not_active",
        )
    grace = data.get("grace_s", DEFAULT_GRACE_S)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= _MAX_GRACE_S:
        raise BadRequest(
            f"grace_s must be an integer from 0 to {_MAX_GRACE_S} (seconds the old key keeps "
            "working)",
            param="grace_s",
        )
    version = _version(data, required=False) or old.version
    fields: dict[str, Any] = {"name": data.get("name", old.name)}
    if "expires_at" in data:
        fields["expires_at"] = data["expires_at"]
    secret, new = _new_record(tenant_id, fields, tenant.policy)
    new = new.with_changes(
        scope=None
        if old.scope is None
        else KeyScope(new.key_id, old.scope.allow_models, old.scope.per_window),
        expires_at=new.expires_at if "expires_at" in data else old.expires_at,
    )
    plane = _plane(request)
    assert plane.store is not None
    _check_trail(request)
    stored_old, stored_new = await plane.store.rotate_key(
        old, new, grace_until=now + grace, expected_version=version
    )
    plane.forget(key_hash=stored_old.key_hash)
    plane.forget(key_hash=stored_new.key_hash)
    await _audit(
        request,
        admin,
        tenant_id=tenant_id,
        what="key.rotate",
        description=f"rotated key {old.key_id} of tenant {tenant_id!r} to {stored_new.key_id} "
        f"({stored_new.prefix}...); the old key works until {_iso(stored_old.revoked_at)}",
        policy=tenant.policy,
    )
    return _created(
        {"key": secret, **_key(stored_new, time.time()), "old": _key(stored_old, time.time())}
    )


def routes() -> list[web.RouteDef]:
    tenant = "/admin/tenants/{tenant_id}"
    key = tenant + "/keys/{key_id}"
    return [
        web.get(tenant + "/keys", admin_route(list_keys)),
        web.post(tenant + "/keys", admin_route(create_key)),
        web.get(key, admin_route(get_key)),
        web.patch(key, admin_route(update_key)),
        web.post(key + "/rotate", admin_route(rotate_key)),
        web.post(key + "/revoke", admin_route(revoke_key)),
    ]

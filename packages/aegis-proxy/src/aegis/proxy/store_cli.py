"""``aegis-proxy tenants import|export|list`` and ``aegis-proxy keys add|list|revoke --store``:
the control-plane store from the command line, opened directly with the config's ``[store]``.

Changes made here go straight to the store (replicas see them at their next poll) and are not
receipted: the receipt trail belongs to the running proxy. For audited changes use the admin
API.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from aegis.core import (
    ControlStore,
    KeyRecord,
    TenantRecord,
    display_prefix,
    hash_key,
    new_key,
    new_key_id,
)
from aegis.proxy.config import ConfigProblems, Settings, TenantSettings, parse_settings
from aegis.proxy.control_plane import open_store

__all__ = [
    "add_key",
    "export_tenants",
    "file_tenants",
    "import_tenants",
    "list_keys",
    "list_tenants",
    "revoke_key",
    "store_for",
    "tenants_toml",
]

_BARE: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def store_for(settings: Settings) -> ControlStore:
    store = open_store(settings.store)
    if store is None:
        raise ConfigProblems(
            str(settings.source or "config"),
            ['store.backend: is "none": there is no control-plane store to use'],
        )
    return store


def file_tenants(settings: Settings, source: Path | None) -> dict[str, TenantSettings]:
    """The ``[tenants]`` of ``source`` (validated as the config is), else of the config."""
    if source is None:
        return dict(settings.tenants)
    data = tomllib.loads(source.read_text())
    loaded = parse_settings(
        {
            "tenants": data.get("tenants", {}),
            "providers": {
                name: {"type": p.type, "base_url": p.base_url}
                for name, p in settings.providers.items()
            },
        },
        source=source,
    )
    return dict(loaded.tenants)


async def import_tenants(
    settings: Settings, tenants: Mapping[str, TenantSettings], *, replace: bool
) -> list[str]:
    """Copy file tenants into the store, with their key hashes; returns one line per tenant.
    An existing store tenant is kept unless ``replace``."""
    store = store_for(settings)
    lines = []
    await store.open()
    try:
        for tenant_id, tenant in sorted(tenants.items()):
            existing = await store.get_tenant(tenant_id)
            if existing is None:
                await store.create_tenant(tenant.policy)
                verb = "created"
            elif replace:
                await store.update_tenant(tenant.policy, expected_version=existing.version)
                verb = "replaced"
            else:
                lines.append(f"{tenant_id}: kept (already in the store; --replace to overwrite)")
                continue
            added = 0
            for key_hash in tenant.api_key_hashes:
                if await store.key_by_hash(key_hash) is not None:
                    continue
                await store.create_key(
                    KeyRecord(
                        key_id=new_key_id(),
                        tenant_id=tenant_id,
                        key_hash=key_hash,
                        prefix="(imported)",
                        created_at=time.time(),
                        name="imported from the config file",
                    )
                )
                added += 1
            lines.append(f"{tenant_id}: {verb}, {added} key(s) added")
    finally:
        await store.close()
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key, ensure_ascii=False)


def tenants_toml(records: list[tuple[TenantRecord, list[KeyRecord]]], now: float) -> str:
    """``[tenants.ID]`` tables for these tenants: the policy and the hashes of working keys
    (expiry, rotation and per-key overrides have no place in the file and are left out)."""
    out = ["# Exported by `aegis-proxy tenants export`: tenants, policies and key hashes.\n"]
    for record, keys in records:
        out.append(f"\n[tenants.{_toml_key(record.tenant_id)}]\n")
        hashes = [k.key_hash for k in keys if k.is_valid(now)]
        out.append(f"api_keys = {_toml_value(hashes)}\n")
        for name, value in record.policy.to_dict().items():
            out.append(f"{_toml_key(name)} = {_toml_value(value)}\n")
    return "".join(out)


async def export_tenants(settings: Settings) -> str:
    """Every store tenant as TOML (loads back through ``tenants import`` or a config file)."""
    store = store_for(settings)
    await store.open()
    try:
        records: list[tuple[TenantRecord, list[KeyRecord]]] = []
        offset = 0
        while True:
            page = await store.list_tenants(limit=1000, offset=offset)
            for record in page:
                records.append((record, await store.list_keys(record.tenant_id)))
            if len(page) < 1000:
                break
            offset += len(page)
    finally:
        await store.close()
    return tenants_toml(records, time.time())


async def list_tenants(settings: Settings) -> list[str]:
    store = store_for(settings)
    await store.open()
    try:
        total = await store.count_tenants()
        page = await store.list_tenants(limit=1000)
    finally:
        await store.close()
    lines = [f"{r.tenant_id}\tversion {r.version}\t{r.policy.version}" for r in page]
    if total > len(page):
        lines.append(f"... and {total - len(page)} more")
    return lines


async def add_key(settings: Settings, tenant_id: str) -> str:
    """A new store key for the store tenant ``tenant_id``; returns the key, shown once."""
    store = store_for(settings)
    await store.open()
    try:
        secret = new_key()
        await store.create_key(
            KeyRecord(
                key_id=new_key_id(),
                tenant_id=tenant_id,
                key_hash=hash_key(secret),
                prefix=display_prefix(secret),
                created_at=time.time(),
            )
        )
    finally:
        await store.close()
    return secret


async def list_keys(settings: Settings, tenant_id: str) -> list[str]:
    store = store_for(settings)
    await store.open()
    try:
        keys = await store.list_keys(tenant_id)
    finally:
        await store.close()
    now = time.time()
    return [f"{k.key_id}\t{k.prefix}...\t{k.state(now)}\t{k.name or ''}" for k in keys]


async def revoke_key(settings: Settings, tenant_id: str, key_id: str) -> bool:
    store = store_for(settings)
    await store.open()
    try:
        key = await store.get_key(key_id)
        if key is None or key.tenant_id != tenant_id:
            return False
        await store.update_key(
            key.with_changes(revoked_at=time.time()), expected_version=key.version
        )
    finally:
        await store.close()
    return True

"""The ControlStore contract, run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time

import pytest

from aegis.core import (
    AlreadyInStore,
    ControlStore,
    KeyRecord,
    KeyScope,
    NotInStore,
    Policy,
    VersionConflict,
    display_prefix,
    hash_key,
    new_key,
    new_key_id,
)

POLICY = {
    "budgets": {"per_run_usd": "0.50", "per_window": [{"window": "day", "limit_usd": "10"}]},
    "model": {"allow_models": ["gpt-4o*"]},
}


def policy(tenant_id: str, day_usd: str = "10") -> Policy:
    return Policy.from_dict(
        tenant_id,
        {**POLICY, "budgets": {"per_window": [{"window": "day", "limit_usd": day_usd}]}},
    )


def key_for(tenant_id: str, **changes: object) -> tuple[str, KeyRecord]:
    secret = new_key()
    record = KeyRecord(
        key_id=new_key_id(),
        tenant_id=tenant_id,
        key_hash=hash_key(secret),
        prefix=display_prefix(secret),
        created_at=time.time(),
    )
    return secret, record.with_changes(**changes)


async def test_tenants_round_trip_with_their_policy(store: ControlStore) -> None:
    created = await store.create_tenant(policy("acme"))
    assert created.version == 1
    got = await store.get_tenant("acme")
    assert got is not None
    assert got.policy == policy("acme")
    assert got.policy.version == policy("acme").version  # the same content hash
    assert await store.get_tenant("nobody") is None
    with pytest.raises(AlreadyInStore):
        await store.create_tenant(policy("acme"))


async def test_list_and_count_in_id_order(store: ControlStore) -> None:
    for name in ["c", "a", "b", "d"]:
        await store.create_tenant(policy(name))
    assert await store.count_tenants() == 4
    page = await store.list_tenants(limit=2, offset=1)
    assert [t.tenant_id for t in page] == ["b", "c"]


async def test_update_checks_the_version(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    updated = await store.update_tenant(policy("acme", "5"), expected_version=1)
    assert updated.version == 2
    with pytest.raises(VersionConflict) as caught:
        await store.update_tenant(policy("acme", "1"), expected_version=1)
    assert caught.value.current_version == 2
    stored = await store.get_tenant("acme")
    assert stored is not None
    assert stored.policy.per_window[0].limit_nanos == 5 * 10**9
    with pytest.raises(NotInStore):
        await store.update_tenant(policy("ghost"), expected_version=1)


async def test_concurrent_edits_never_lose_an_update(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    results = await asyncio.gather(
        *(store.update_tenant(policy("acme", str(n)), expected_version=1) for n in range(1, 9)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflict) for r in results if isinstance(r, BaseException))
    stored = await store.get_tenant("acme")
    assert stored is not None
    assert stored.version == 2
    assert stored.policy == winners[0].policy


async def test_delete_removes_the_tenant_and_its_keys(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    _, key = key_for("acme")
    await store.create_key(key)
    with pytest.raises(VersionConflict):
        await store.delete_tenant("acme", expected_version=7)
    await store.delete_tenant("acme", expected_version=1)
    assert await store.get_tenant("acme") is None
    assert await store.key_by_hash(key.key_hash) is None
    with pytest.raises(NotInStore):
        await store.delete_tenant("acme", expected_version=1)


async def test_keys_by_hash_with_metadata_and_scope(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    scope = KeyScope.from_dict(
        "ignored",
        {"allow_models": ["gpt-4o-mini"], "per_window": [{"window": "day", "limit_usd": "1"}]},
    )
    secret, key = key_for("acme", name="ci", expires_at=time.time() + 60)
    key = key.with_changes(scope=KeyScope(key.key_id, scope.allow_models, scope.per_window))
    stored = await store.create_key(key)
    assert stored.version == 1
    found = await store.key_by_hash(hash_key(secret))
    assert found == stored
    assert found is not None
    assert found.scope is not None
    assert found.scope.allow_models == ("gpt-4o-mini",)
    assert found.scope.per_window[0].limit_nanos == 10**9
    assert await store.get_key(key.key_id) == stored
    assert await store.key_by_hash(hash_key("aegis-sk-other")) is None
    with pytest.raises(AlreadyInStore):
        await store.create_key(key)


async def test_a_key_needs_an_existing_tenant(store: ControlStore) -> None:
    _, key = key_for("ghost")
    with pytest.raises(NotInStore):
        await store.create_key(key)


async def test_list_keys_oldest_first_and_per_tenant(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    await store.create_tenant(policy("beta"))
    made = []
    for i in range(3):
        _, key = key_for("acme", created_at=1000.0 + i)
        made.append((await store.create_key(key)).key_id)
    _, other = key_for("beta")
    await store.create_key(other)
    assert [k.key_id for k in await store.list_keys("acme")] == made
    assert [k.key_id for k in await store.list_keys("beta")] == [other.key_id]


async def test_update_key_revokes_with_a_version_check(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    await store.create_tenant(policy("beta"))
    _, key = key_for("acme")
    await store.create_key(key)
    now = time.time()
    revoked = await store.update_key(key.with_changes(revoked_at=now), expected_version=1)
    assert revoked.version == 2
    assert not revoked.is_valid(now + 1)
    stored = await store.key_by_hash(key.key_hash)
    assert stored is not None
    assert stored.revoked_at == pytest.approx(now)
    with pytest.raises(VersionConflict):
        await store.update_key(key.with_changes(name="x"), expected_version=1)
    # Another tenant's key id is not found, never "conflict" or "forbidden".
    with pytest.raises(NotInStore):
        await store.update_key(key.with_changes(tenant_id="beta"), expected_version=2)


async def test_rotate_keeps_the_old_key_until_the_grace_ends(store: ControlStore) -> None:
    await store.create_tenant(policy("acme"))
    _, old = key_for("acme")
    await store.create_key(old)
    _, new = key_for("acme")
    grace_until = time.time() + 30
    stored_old, stored_new = await store.rotate_key(
        old, new, grace_until=grace_until, expected_version=1
    )
    assert stored_new.rotated_from == old.key_id
    assert stored_old.revoked_at == pytest.approx(grace_until)
    assert stored_old.is_valid(time.time())
    assert stored_old.state(time.time()) == "grace"
    assert not stored_old.is_valid(grace_until + 1)
    assert await store.key_by_hash(new.key_hash) == stored_new
    # A rotation from a stale read changes nothing.
    _, third = key_for("acme")
    with pytest.raises(VersionConflict):
        await store.rotate_key(old, third, grace_until=grace_until, expected_version=1)
    assert await store.key_by_hash(third.key_hash) is None


async def test_every_write_is_in_the_change_sequence(store: ControlStore) -> None:
    start = await store.head()
    await store.create_tenant(policy("acme"))
    _, key = key_for("acme")
    await store.create_key(key)
    await store.update_tenant(policy("acme", "3"), expected_version=1)
    await store.update_key(key.with_changes(revoked_at=time.time()), expected_version=1)
    changes = await store.changes_since(start)
    assert [(c.kind, c.tenant_id, c.key_hash) for c in changes] == [
        ("tenant", "acme", None),
        ("key", "acme", key.key_hash),
        ("tenant", "acme", None),
        ("key", "acme", key.key_hash),
    ]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert await store.head() == seqs[-1]
    assert await store.changes_since(seqs[-1]) == []
    assert len(await store.changes_since(start, limit=2)) == 2
    # A refused write leaves no change behind.
    with pytest.raises(VersionConflict):
        await store.update_tenant(policy("acme"), expected_version=1)
    assert await store.head() == seqs[-1]


async def test_policy_lookup_is_validated_on_the_way_in(store: ControlStore) -> None:
    # The store only ever holds policies that Policy.from_dict accepted, so what it reads back
    # is the same validated value, version included.
    p = Policy.from_dict(
        "acme",
        {
            "budgets": {"per_window": [{"window": "hour", "limit_usd": "2", "alert_at": [0.5]}]},
            "limits": [{"model": "gpt-4o*", "rpm": 60}],
            "routing": {"fallback_models": {"a": "b"}},
        },
    )
    await store.create_tenant(p)
    got = await store.get_tenant("acme")
    assert got is not None
    assert got.policy == p
    assert got.policy.version == p.version

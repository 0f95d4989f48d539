"""Tenants, policies and keys at run time: the config file's tenants plus the control-plane
store's, behind one policy provider and one key lookup.

File tenants (``[tenants.ID]``) come first and are read-only through the admin API. Store
tenants are loaded on demand into a bounded cache; keys are looked up by hash in the store,
with bounded caches of hits and of misses (kept apart, so a flood of unknown keys cannot push
the known ones out, and keyed by hash, so a cache answers nothing about keys nobody presented).

Every replica polls the store's change sequence (``poll_interval_s``, 1 s by default; with
PostgreSQL a ``NOTIFY`` wakes it at once) and drops the cache entries a change touched, so a
revocation made through any replica is in force everywhere within a poll. Fail closed: when
the store has not answered a poll for ``stale_after_s`` (5 s), the caches are not trusted any
more and every lookup goes to the store, which refuses (503) while it is down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from aegis.core import (
    ControlStore,
    InMemoryPolicyProvider,
    KeyRecord,
    KeyScope,
    Policy,
    PolicyProvider,
    PostgresControlStore,
    SqliteControlStore,
    StoreUnavailable,
    TenantRecord,
)
from aegis.proxy.config import Settings, StoreSettings

__all__ = ["ControlPlane", "Identity", "control_plane_context", "open_store", "plane_for"]

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: the tenant, and the key's scope when it is a store key."""

    tenant_id: str
    key: KeyScope | None = None
    """Set for store keys (even without overrides, so receipts can name the key)."""


class _Lru(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    __slots__ = ("_data", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): a cached ``None`` is a hit, so hits and misses stay apart."""
        if key not in self._data:
            return False, None
        self._data.move_to_end(key)
        return True, self._data[key]

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class ControlPlane:
    """The proxy's policy provider and store-key lookup (see the module docstring)."""

    def __init__(
        self,
        files: InMemoryPolicyProvider,
        store: ControlStore | None,
        *,
        remote: PolicyProvider | None = None,
        poll_interval_s: float = 1.0,
        stale_after_s: float = 5.0,
        policy_cache_size: int = 10_000,
        key_cache_size: int = 100_000,
        miss_cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.files = files
        self.store = store
        self.remote = remote
        """``[policies] url``: where the policies of tenants not in the file come from."""
        self.poll_interval_s = poll_interval_s
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._monotonic = monotonic
        self._policies: _Lru[str, TenantRecord | None] = _Lru(policy_cache_size)
        self._keys: _Lru[str, KeyRecord] = _Lru(key_cache_size)
        self._misses: _Lru[str, None] = _Lru(miss_cache_size)
        self.on_tenant: Callable[[str], None] | None = None
        """Called with each store tenant whose policy is loaded (the proxy's statistics then
        count it under its own id); must not raise."""
        self._seq = 0
        self._synced_at = -float("inf")
        self._wake = asyncio.Event()

    # -- freshness -------------------------------------------------------------------------

    def _fresh(self) -> bool:
        if self._monotonic() - self._synced_at <= self.stale_after_s:
            return True
        if len(self._policies) or len(self._keys) or len(self._misses):
            logger.warning("control store not polled for %.1fs: caches dropped", self.stale_after_s)
        self._drop_caches()
        return False

    def _drop_caches(self) -> None:
        self._policies.clear()
        self._keys.clear()
        self._misses.clear()

    async def start(self) -> None:
        """Open the store and take its current change position (the caches start empty)."""
        if self.store is None:
            return
        await self.store.open()
        self._seq = await self.store.head()
        self._synced_at = self._monotonic()

    async def sync(self) -> int:
        """Apply the store's changes since the last poll; returns how many there were."""
        if self.store is None:
            return 0
        seen = 0
        while True:
            changes = await self.store.changes_since(self._seq, limit=1000)
            for change in changes:
                if change.kind == "tenant":
                    self._policies.pop(change.tenant_id)
                elif change.key_hash is not None:
                    self._keys.pop(change.key_hash)
                    self._misses.pop(change.key_hash)
                self._seq = change.seq
            seen += len(changes)
            if len(changes) < 1000:
                break
        self._synced_at = self._monotonic()
        return seen

    def wake(self) -> None:
        """Poll now (a change notification arrived)."""
        self._wake.set()

    async def run(self) -> None:
        """Poll forever (the background task of :func:`control_plane_context`)."""
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            self._wake.clear()
            try:
                await self.sync()
            except StoreUnavailable as exc:
                logger.error("control store poll failed: %s", exc.message)
            except Exception as exc:
                logger.error("control store poll failed: %s", type(exc).__name__)

    # -- lookups ---------------------------------------------------------------------------

    async def get_policy(self, *, tenant_id: str) -> Policy | None:
        """The tenant's policy: the file's, else the policy API's (``[policies] url``), else
        the store's (:class:`PolicyProvider`)."""
        policy = await self.files.get_policy(tenant_id=tenant_id)
        if policy is not None:
            return policy
        if self.remote is not None:
            return await self.remote.get_policy(tenant_id=tenant_id)
        if self.store is None:
            return policy
        record = await self.tenant(tenant_id)
        return None if record is None else record.policy

    async def tenant(self, tenant_id: str) -> TenantRecord | None:
        """A store tenant (cached); raises :class:`StoreUnavailable` when the store is down."""
        if self.store is None:
            return None
        if self._fresh():
            found, cached = self._policies.get(tenant_id)
            if found:
                return cached
        record = await self.store.get_tenant(tenant_id)
        self._policies.put(tenant_id, record)
        if record is not None and self.on_tenant is not None:
            self.on_tenant(tenant_id)
        return record

    async def key(self, key_hash: str) -> KeyRecord | None:
        """The store key with this hash if it is valid now (cached hit or miss)."""
        if self.store is None:
            return None
        record: KeyRecord | None
        cached: KeyRecord | None = None
        if self._fresh():
            _, cached = self._keys.get(key_hash)
            if cached is None and self._misses.get(key_hash)[0]:
                return None
        if cached is not None:
            record = cached
        else:
            record = await self.store.key_by_hash(key_hash)
            if record is None:
                self._misses.put(key_hash, None)
            else:
                self._keys.put(key_hash, record)
        if record is None or not record.is_valid(self._clock()):
            return None
        return record

    def forget(self, *, tenant_id: str | None = None, key_hash: str | None = None) -> None:
        """Drop cache entries this replica changed itself (other replicas learn by polling)."""
        if tenant_id is not None:
            self._policies.pop(tenant_id)
        if key_hash is not None:
            self._keys.pop(key_hash)
            self._misses.pop(key_hash)


def control_plane_context(plane: ControlPlane) -> Any:
    """A cleanup context: open the store, poll it (and listen, on PostgreSQL), close it."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await plane.start()
        stop_listening = None
        if isinstance(plane.store, PostgresControlStore):
            try:
                stop_listening = await plane.store.listen(plane.wake)
            except Exception as exc:  # polling still delivers every change
                logger.warning("control store LISTEN failed (%s): polling only", type(exc).__name__)
        task = asyncio.create_task(plane.run()) if plane.store is not None else None
        yield
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if stop_listening is not None:
            with suppress(Exception):
                await stop_listening()
        if plane.store is not None:
            await plane.store.close()
        close = getattr(plane.remote, "close", None)
        if close is not None:
            await close()

    return ctx


def open_store(
    settings: StoreSettings, environ: Mapping[str, str] | None = None
) -> ControlStore | None:
    """The store ``settings`` name (not yet opened), or ``None`` for ``backend = "none"``."""
    if settings.backend == "none":
        return None
    if settings.backend == "sqlite":
        return SqliteControlStore(settings.path)
    env = os.environ if environ is None else environ
    url = settings.url or env.get(settings.url_env)
    if not url:
        raise StoreUnavailable(
            f'[store] backend = "postgres" needs a URL: set {settings.url_env} (or [store] url)'
        )
    return PostgresControlStore(url)


def plane_for(settings: Settings, files: InMemoryPolicyProvider) -> ControlPlane:
    """The control plane of ``settings`` over the file policies ``files``."""
    store = settings.store
    remote = None
    if settings.policies.url is not None:
        from aegis.proxy.http_policies import HttpPolicyProvider

        remote = HttpPolicyProvider(settings.policies)
    return ControlPlane(
        files,
        open_store(store),
        remote=remote,
        poll_interval_s=store.poll_interval_s,
        stale_after_s=store.stale_after_s,
        policy_cache_size=store.policy_cache_size,
        key_cache_size=store.key_cache_size,
    )

"""Policies fetched from the operator's own API (``[policies] url``), with a TTL cache,
stale-while-revalidate, and fail closed.

``GET <url with {tenant_id}>`` answers 200 with the tenant's policy as JSON (the shape of a
``[tenants.ID]`` table), validated like a config file; 404 means the tenant is unknown (denied).
A policy younger than ``ttl_s`` is served from the cache; an older one, up to ``ttl_s +
stale_s``, is served at once while one background request refreshes it; past that, or for a
tenant never fetched, the call waits for the API (at most ``timeout_s``). When the API is down,
slow, or answers anything else (a 5xx, bad JSON, an invalid policy), a cold or expired entry
fails closed: the call is refused with 503, never admitted under a guess. A failed refresh never
replaces the policy that was good.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from aegis.core import Policy, PolicyError, StoreUnavailable
from aegis.proxy.config import PolicySourceSettings

__all__ = ["HttpPolicyProvider"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Entry:
    policy: Policy | None
    """``None``: the API said the tenant does not exist (404)."""
    fetched_at: float


class HttpPolicyProvider:
    """A :class:`~aegis.core.PolicyProvider` reading an HTTP API (see the module docstring)."""

    def __init__(
        self,
        settings: PolicySourceSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.url is not None
        self.settings = settings
        self._url = settings.url
        self._monotonic = monotonic
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        token = os.environ.get(settings.token_env) if settings.token_env else None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def close(self) -> None:
        for task in list(self._refreshing.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url_for(self, tenant_id: str) -> str:
        quoted = quote(tenant_id, safe="")
        if "{tenant_id}" in self._url:
            return self._url.replace("{tenant_id}", quoted)
        return self._url.rstrip("/") + "/" + quoted

    async def get_policy(self, *, tenant_id: str) -> Policy | None:
        now = self._monotonic()
        entry = self._cache.get(tenant_id)
        if entry is not None:
            age = now - entry.fetched_at
            if age < self.settings.ttl_s:
                self._cache.move_to_end(tenant_id)
                return entry.policy
            if age < self.settings.ttl_s + self.settings.stale_s:
                self._refresh_later(tenant_id)
                return entry.policy
        return await self._fetch(tenant_id)

    def _refresh_later(self, tenant_id: str) -> None:
        if tenant_id in self._refreshing:
            return

        async def refresh() -> None:
            try:
                await self._fetch(tenant_id)
            except StoreUnavailable as exc:
                logger.warning("policy refresh of tenant %s failed: %s", tenant_id, exc.message)
            finally:
                self._refreshing.pop(tenant_id, None)

        self._refreshing[tenant_id] = asyncio.get_running_loop().create_task(refresh())

    async def _fetch(self, tenant_id: str) -> Policy | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
            )
        try:
            async with self._session.get(
                self._url_for(tenant_id), headers=self._headers, allow_redirects=False
            ) as response:
                if response.status == 404:
                    policy = None
                elif response.status != 200:
                    raise StoreUnavailable(
                        f"policy API answered {response.status} for tenant {tenant_id!r}"
                    )
                else:
                    body = await response.read()
                    data = json.loads(body)
                    if not isinstance(data, dict):
                        raise StoreUnavailable(
                            f"policy API sent no JSON object for tenant {tenant_id!r}"
                        )
                    policy = Policy.from_dict(tenant_id, data)
        except StoreUnavailable:
            raise
        except PolicyError as exc:
            logger.error("policy API sent an invalid policy: %s", exc.message)
            raise StoreUnavailable(f"policy API sent an invalid policy: {exc.message}") from exc
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as exc:
            # The URL is not named: it may carry a token.
            raise StoreUnavailable(f"policy API failed: {type(exc).__name__}") from exc
        self._cache[tenant_id] = _Entry(policy, self._monotonic())
        self._cache.move_to_end(tenant_id)
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)
        return policy

"""``Idempotency-Key`` with Stripe's semantics, scoped to the tenant.

The same key with the same body replays the stored answer of a finished non-streamed call
(no second upstream call, no second charge); while the first is running the answer is 409;
the same key with a different body is 422. Entries live 24 hours.

:class:`IdempotencyStore` keeps them in the process; with the Redis ledger,
:class:`RedisIdempotencyStore` keeps them in the same Redis, so a retry that lands on another
replica replays the first answer too (and a concurrent duplicate on another replica gets 409).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from aegis.proxy.errors import BadRequest, Conflict, Unprocessable

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["IdempotencyBackend", "IdempotencyStore", "RedisIdempotencyStore", "StoredResponse"]

TTL_S: Final = 86_400.0
MAX_KEY_LENGTH: Final = 255
RUNNING_TTL_S: Final = 900
"""How long a claim of a call still running holds (a replica that died mid-call frees its
keys after this)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class _Entry:
    body_hash: str
    created: float
    done: asyncio.Event = field(default_factory=asyncio.Event)
    response: StoredResponse | None = None


class IdempotencyBackend(Protocol):
    """Where ``Idempotency-Key`` claims and answers live."""

    async def begin(self, tenant_id: str, key: str, body: bytes) -> StoredResponse | None:
        """Claim ``key``; returns the stored answer to replay, or ``None`` to proceed. Raises
        409 while another request holds it, 422 when it came with another body."""
        ...

    async def finish(self, tenant_id: str, key: str, response: StoredResponse | None) -> None:
        """Store the answer (``None``: nothing to replay: free the key)."""
        ...

    async def close(self) -> None: ...


def _check_key(key: str) -> None:
    if len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key longer than {MAX_KEY_LENGTH} characters", param="Idempotency-Key"
        )


def _reused() -> Unprocessable:
    return Unprocessable(
        "Idempotency-Key was used with a different request body",
        param="Idempotency-Key",
        code="idempotency_key_reused",
    )


def _in_use() -> Conflict:
    return Conflict(
        "a request with this Idempotency-Key is still in progress",
        param="Idempotency-Key",
        code="idempotency_key_in_use",
    )


class IdempotencyStore:
    """In-memory store of idempotent requests (per proxy process)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}

    async def close(self) -> None:
        self._entries.clear()

    async def begin(self, tenant_id: str, key: str, body: bytes) -> StoredResponse | None:
        """Claim ``key``; returns the stored answer to replay, or ``None`` to proceed."""
        _check_key(key)
        now = time.monotonic()
        body_hash = hashlib.sha256(body).hexdigest()
        entry = self._entries.get((tenant_id, key))
        if entry is not None and now - entry.created > TTL_S:
            entry = None
        if entry is None:
            if len(self._entries) > 100_000:
                self._prune(now)
            self._entries[(tenant_id, key)] = _Entry(body_hash, now)
            return None
        if entry.body_hash != body_hash:
            raise _reused()
        if entry.response is None:
            raise _in_use()
        return entry.response

    async def finish(self, tenant_id: str, key: str, response: StoredResponse | None) -> None:
        """Store the answer (``None``: nothing to replay, e.g. validation failed: forget)."""
        entry = self._entries.get((tenant_id, key))
        if entry is None:
            return
        if response is None:
            del self._entries[(tenant_id, key)]
        else:
            entry.response = response
        entry.done.set()

    def _prune(self, now: float) -> None:
        self._entries = {k: e for k, e in self._entries.items() if now - e.created <= TTL_S}


# Frees a claim only if it is still this request's (a claim that expired and was taken by
# another request is not ours to delete).
_RELEASE: Final = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value)['token'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisIdempotencyStore:
    """``Idempotency-Key`` entries in Redis, shared by every replica using it.

    A claim is ``SET NX`` of ``{"state": "running", "body": <sha256>, "token": ...}`` for
    :data:`RUNNING_TTL_S`; the answer replaces it for 24 hours. Redis being down fails the
    request (503), never runs it unprotected.
    """

    def __init__(self, url: str, *, prefix: str = "aegis") -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._tokens: dict[tuple[str, str], str] = {}

    def _name(self, tenant_id: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self._prefix}:idem:{{{tenant_id}}}:{digest}"

    async def close(self) -> None:
        await self._redis.aclose()

    async def _call(self, fn: Any) -> Any:
        from aegis.core import LedgerUnavailable

        try:
            return await fn
        except Exception as exc:
            raise LedgerUnavailable(
                f"idempotency store (Redis) failed: {type(exc).__name__}"
            ) from exc

    async def begin(self, tenant_id: str, key: str, body: bytes) -> StoredResponse | None:
        _check_key(key)
        body_hash = hashlib.sha256(body).hexdigest()
        name = self._name(tenant_id, key)
        token = secrets.token_hex(8)
        claim = json.dumps({"state": "running", "body": body_hash, "token": token})
        if await self._call(self._redis.set(name, claim, nx=True, ex=RUNNING_TTL_S)):
            self._tokens[(tenant_id, key)] = token
            return None
        raw = await self._call(self._redis.get(name))
        if raw is None:  # expired between the two commands: claim again
            return await self.begin(tenant_id, key, body)
        entry = json.loads(raw)
        if entry["body"] != body_hash:
            raise _reused()
        if entry["state"] != "done":
            raise _in_use()
        return StoredResponse(
            status=int(entry["status"]),
            body=base64.b64decode(entry["response"]),
            headers=dict(entry["headers"]),
        )

    async def finish(self, tenant_id: str, key: str, response: StoredResponse | None) -> None:
        token = self._tokens.pop((tenant_id, key), None)
        if token is None:
            return
        name = self._name(tenant_id, key)
        if response is None:
            await self._call(self._redis.eval(_RELEASE, 1, name, token))
            return
        raw = await self._call(self._redis.get(name))
        body_hash = json.loads(raw)["body"] if raw else ""
        done = {
            "state": "done",
            "body": body_hash,
            "token": token,
            "status": response.status,
            "response": base64.b64encode(response.body).decode(),
            "headers": response.headers,
        }
        await self._call(self._redis.set(name, json.dumps(done), ex=int(TTL_S)))

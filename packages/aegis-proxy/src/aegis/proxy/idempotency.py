"""``Idempotency-Key`` with Stripe's semantics, scoped to the tenant.

The same key with the same body replays the stored answer of a finished non-streamed call
(no second upstream call, no second charge); while the first is running the answer is 409;
the same key with a different body is 422. Entries live 24 hours.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Final

from aegis.proxy.errors import BadRequest, Conflict, Unprocessable

__all__ = ["IdempotencyStore", "StoredResponse"]

TTL_S: Final = 86_400.0
MAX_KEY_LENGTH: Final = 255


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


class IdempotencyStore:
    """In-memory store of idempotent requests (per proxy process)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}

    def begin(self, tenant_id: str, key: str, body: bytes) -> StoredResponse | None:
        """Claim ``key``; returns the stored answer to replay, or ``None`` to proceed."""
        if len(key) > MAX_KEY_LENGTH:
            raise BadRequest(
                f"Idempotency-Key longer than {MAX_KEY_LENGTH} characters", param="Idempotency-Key"
            )
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
            raise Unprocessable(
                "Idempotency-Key was used with a different request body",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        if entry.response is None:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress",
                param="Idempotency-Key",
                code="idempotency_key_in_use",
            )
        return entry.response

    def finish(self, tenant_id: str, key: str, response: StoredResponse | None) -> None:
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

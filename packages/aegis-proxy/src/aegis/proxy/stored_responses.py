"""Who made each stored Responses object, so ``GET /v1/responses/{id}`` reads only the
caller's own.

Every provider behind the proxy is called with the operator's key, so the provider would hand
any tenant any response it stores. The proxy notes the tenant, provider and model of every
response id it relays (bounded, oldest forgotten first) and serves a read only to the tenant
that made it; any other id is 404, the same answer whether it exists or not. The note lives
in this process: a response made through another replica, or before a restart, is 404 here.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_STORED", "ResponseOwner", "ResponseOwners"]

MAX_STORED: Final = 100_000
"""Response ids remembered; the oldest are forgotten first."""


@dataclass(frozen=True, slots=True)
class ResponseOwner:
    """Where one response was made."""

    tenant_id: str
    provider: str
    """The provider that stores it (reads go to the same one)."""
    model: str


class ResponseOwners:
    """Response id → its owner, per process."""

    __slots__ = ("_owners",)

    def __init__(self) -> None:
        self._owners: OrderedDict[str, ResponseOwner] = OrderedDict()

    def record(self, response_id: str, owner: ResponseOwner) -> None:
        self._owners[response_id] = owner
        self._owners.move_to_end(response_id)
        while len(self._owners) > MAX_STORED:
            self._owners.popitem(last=False)

    def owner(self, response_id: str, tenant_id: str) -> ResponseOwner | None:
        """The response's owner when ``tenant_id`` made it; ``None`` otherwise."""
        owner = self._owners.get(response_id)
        return owner if owner is not None and owner.tenant_id == tenant_id else None

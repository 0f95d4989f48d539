"""The control plane's data: tenants with their policies, virtual keys (by hash) and their
metadata, behind the :class:`ControlStore` Protocol.

Two stores implement it: :class:`~aegis.core.SqliteControlStore` (embedded, the default, one
file beside the ledger) and :class:`~aegis.core.PostgresControlStore` (many replicas; the
``postgres`` extra). Both keep a **change sequence**: every write appends ``(seq, kind,
tenant_id, key_hash)``, and a reader that caches tenants or keys asks
:meth:`ControlStore.changes_since` for what changed after the last ``seq`` it saw, so a change
made through any replica reaches every replica at its next poll.

Keys are stored only as ``sha256:<hex>`` digests, next to a short display ``prefix``; a key is
valid while it is neither revoked (``revoked_at`` in the past) nor expired (``expires_at`` in
the past). Rotation makes a new key and sets the old key's ``revoked_at`` to the end of the
grace period, so both work until then.

Every record carries an integer ``version`` that each write increments; updates name the
version they read and fail with :class:`~aegis.core.VersionConflict` when it moved (no lost
update under concurrent edits).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Final, Literal, Protocol

from aegis.core.errors import PolicyError
from aegis.core.money import format_usd, parse_usd
from aegis.core.policy import Policy, WindowBudget
from aegis.core.windows import WINDOWS

__all__ = [
    "KEY_PREFIX",
    "Change",
    "ControlStore",
    "KeyRecord",
    "KeyScope",
    "TenantRecord",
    "display_prefix",
    "hash_key",
    "new_key",
    "new_key_id",
]

KEY_PREFIX: Final = "aegis-sk-"
_DISPLAY_PREFIX_CHARS: Final = len(KEY_PREFIX) + 4
ChangeKind = Literal["tenant", "key"]


def new_key() -> str:
    """A fresh virtual key: 256 random bits, shown once."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The only form a key is stored or looked up in: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key_id() -> str:
    """A key's public id (names it in the admin API, receipts and logs; not a secret)."""
    return "key_" + secrets.token_hex(8)


def display_prefix(key: str) -> str:
    """What may be shown of a key to tell keys apart: the fixed prefix and 4 characters."""
    return key[:_DISPLAY_PREFIX_CHARS]


@dataclass(frozen=True, slots=True)
class KeyScope:
    """Per-key limits inside the tenant's policy: a key can only narrow what its tenant may do."""

    key_id: str
    allow_models: tuple[str, ...] | None = None
    """Glob patterns the key may call, *and* the tenant's own patterns must allow; ``None``:
    whatever the tenant may call."""
    per_window: tuple[WindowBudget, ...] = ()
    """Budgets of this key alone, reserved beside the tenant's (the tighter one wins)."""

    def allows_model(self, model: str) -> bool:
        """Whether this key may call ``model`` (the tenant's policy is checked separately)."""
        return self.allow_models is None or any(
            fnmatchcase(model, pattern) for pattern in self.allow_models
        )

    @property
    def is_narrowing(self) -> bool:
        """Whether the scope limits anything at all."""
        return self.allow_models is not None or bool(self.per_window)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (amounts as decimal strings)."""
        data: dict[str, Any] = {
            "per_window": [
                {"window": b.window, "limit_usd": format_usd(b.limit_nanos)}
                for b in self.per_window
            ]
        }
        if self.allow_models is not None:
            data["allow_models"] = list(self.allow_models)
        return data

    @classmethod
    def from_dict(
        cls, key_id: str, data: Mapping[str, Any], *, tenant: Policy | None = None
    ) -> KeyScope:
        """Validate overrides; with ``tenant``, also that each window budget fits under the
        tenant's budget of that window. Raises :class:`PolicyError` naming the field."""
        tenant_id = tenant.tenant_id if tenant is not None else "*"

        def fail(name: str, problem: str) -> PolicyError:
            return PolicyError(tenant_id, name, problem)

        unknown = set(data) - {"allow_models", "per_window"}
        if unknown:
            raise fail(sorted(unknown)[0], "unknown key (known: allow_models, per_window)")
        models = data.get("allow_models")
        if models is not None and (
            not isinstance(models, list | tuple)
            or not models
            or not all(isinstance(m, str) and m for m in models)
        ):
            raise fail("allow_models", "must be a non-empty list of model patterns")
        windows = data.get("per_window", [])
        if not isinstance(windows, list | tuple):
            raise fail("per_window", "must be a list of {window, limit_usd} tables")
        budgets: list[WindowBudget] = []
        for i, item in enumerate(windows):
            where = f"per_window[{i}]"
            if not isinstance(item, Mapping):
                raise fail(where, "must be a table {window, limit_usd}")
            extra = set(item) - {"window", "limit_usd"}
            if extra:
                raise fail(f"{where}.{sorted(extra)[0]}", "unknown key (known: limit_usd, window)")
            window = item.get("window")
            if window not in WINDOWS:
                raise fail(f"{where}.window", f"must be one of {list(WINDOWS)}, got {window!r}")
            if any(b.window == window for b in budgets):
                raise fail(f"{where}.window", f"{window!r} is listed twice")
            raw = item.get("limit_usd")
            if not isinstance(raw, str | int) or isinstance(raw, bool):
                raise fail(f"{where}.limit_usd", 'must be a decimal string such as "2.50"')
            try:
                limit = parse_usd(str(raw))
            except (ValueError, ArithmeticError):
                raise fail(f"{where}.limit_usd", f"not a USD amount: {raw!r}") from None
            if limit < 0:
                raise fail(f"{where}.limit_usd", "must not be negative")
            if tenant is not None:
                for own in tenant.per_window:
                    if own.window == window and limit > own.limit_nanos:
                        raise fail(
                            f"{where}.limit_usd",
                            f"${format_usd(limit)} is above the tenant's {window} budget "
                            f"(${format_usd(own.limit_nanos)}): a key's budget sits under "
                            "its tenant's",
                        )
            budgets.append(WindowBudget(window=window, limit_nanos=limit))
        return cls(
            key_id=key_id,
            allow_models=None if models is None else tuple(models),
            per_window=tuple(budgets),
        )


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant the store holds, with its policy."""

    policy: Policy
    version: int = 1
    """Incremented by every write; updates and deletes name the version they read."""
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def tenant_id(self) -> str:
        return self.policy.tenant_id


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A virtual key's metadata; the key itself is never stored, only ``key_hash``."""

    key_id: str
    tenant_id: str
    key_hash: str
    """``sha256:<hex>`` of the key; never shown by the admin API."""
    prefix: str
    """The first characters of the key (``aegis-sk-AbCd``), to tell keys apart in listings."""
    created_at: float
    name: str | None = None
    expires_at: float | None = None
    """Epoch second from which the key no longer works; ``None``: never expires."""
    revoked_at: float | None = None
    """Epoch second from which the key no longer works (revoked, or the end of a rotation's
    grace period); ``None``: not revoked."""
    rotated_from: str | None = None
    """The key id this key replaced."""
    scope: KeyScope | None = None
    """Per-key overrides; ``None``: the tenant's policy alone."""
    version: int = 1

    def __post_init__(self) -> None:
        if not (self.key_hash.startswith("sha256:") and len(self.key_hash) == 71):
            raise ValueError("key_hash must be 'sha256:<64 hex>'")

    def is_valid(self, now: float) -> bool:
        """Whether the key authenticates at ``now``."""
        return (self.revoked_at is None or now < self.revoked_at) and (
            self.expires_at is None or now < self.expires_at
        )

    def state(self, now: float) -> str:
        """``active``, ``grace`` (rotated, still valid), ``revoked`` or ``expired``."""
        if self.revoked_at is not None and now >= self.revoked_at:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "grace" if self.revoked_at is not None else "active"

    def key_scope(self) -> KeyScope:
        """The scope the Gate applies to calls made with this key."""
        return self.scope if self.scope is not None else KeyScope(self.key_id)

    def with_changes(self, **changes: Any) -> KeyRecord:
        """A copy with ``changes`` (the store sets the new ``version``)."""
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Change:
    """One write in the store's change sequence."""

    seq: int
    kind: ChangeKind
    tenant_id: str
    key_hash: str | None = None
    """For a key change: the hash whose cached lookup must be dropped."""


class ControlStore(Protocol):
    """Where tenants, their policies and virtual keys live at run time.

    Every method is async and may raise :class:`~aegis.core.StoreUnavailable` (callers fail
    closed). Writes are atomic and each appends to the change sequence. Key lookups go by hash
    only. ``tenant_id`` and ``key_id`` are opaque strings; a key id is unique store-wide.
    """

    async def open(self) -> None:
        """Create the schema if needed; idempotent."""
        ...

    async def close(self) -> None: ...

    async def create_tenant(self, policy: Policy) -> TenantRecord:
        """Add a tenant (:class:`~aegis.core.AlreadyInStore` if it exists)."""
        ...

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None: ...

    async def list_tenants(self, *, limit: int, offset: int = 0) -> list[TenantRecord]:
        """Tenants ordered by id."""
        ...

    async def count_tenants(self) -> int: ...

    async def update_tenant(self, policy: Policy, *, expected_version: int) -> TenantRecord:
        """Replace a tenant's policy if it is still at ``expected_version``."""
        ...

    async def delete_tenant(self, tenant_id: str, *, expected_version: int) -> None:
        """Remove a tenant and every key of it."""
        ...

    async def create_key(self, key: KeyRecord) -> KeyRecord:
        """Add a key of an existing tenant (:class:`~aegis.core.NotInStore` otherwise)."""
        ...

    async def get_key(self, key_id: str) -> KeyRecord | None: ...

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None: ...

    async def list_keys(self, tenant_id: str) -> list[KeyRecord]:
        """The tenant's keys, oldest first."""
        ...

    async def update_key(self, key: KeyRecord, *, expected_version: int) -> KeyRecord:
        """Replace a key's mutable fields (name, expiry, revocation, scope); its id, tenant,
        hash and prefix never change."""
        ...

    async def rotate_key(
        self, old: KeyRecord, new: KeyRecord, *, grace_until: float, expected_version: int
    ) -> tuple[KeyRecord, KeyRecord]:
        """Atomically add ``new`` and set ``old``'s ``revoked_at`` to ``grace_until`` (kept if
        already earlier); returns (old, new) as stored."""
        ...

    async def changes_since(self, seq: int, *, limit: int = 1000) -> list[Change]:
        """The writes after ``seq``, oldest first (at most ``limit``)."""
        ...

    async def head(self) -> int:
        """The last ``seq`` written (0 when none)."""
        ...


# -- row encoding shared by the stores ---------------------------------------------------


def policy_to_json(policy: Policy) -> str:
    return json.dumps(policy.to_dict(), sort_keys=True, separators=(",", ":"))


def policy_from_json(tenant_id: str, text: str) -> Policy:
    return Policy.from_dict(tenant_id, json.loads(text))


def scope_to_json(scope: KeyScope | None) -> str | None:
    if scope is None or not scope.is_narrowing:
        return None
    return json.dumps(scope.to_dict(), sort_keys=True, separators=(",", ":"))


def scope_from_json(key_id: str, text: str | None) -> KeyScope | None:
    if text is None:
        return None
    return KeyScope.from_dict(key_id, json.loads(text))


KEY_COLUMNS: Final[Sequence[str]] = (
    "key_id",
    "tenant_id",
    "key_hash",
    "prefix",
    "name",
    "created_at",
    "expires_at",
    "revoked_at",
    "rotated_from",
    "scope",
    "version",
)


def key_row(key: KeyRecord) -> tuple[Any, ...]:
    return (
        key.key_id,
        key.tenant_id,
        key.key_hash,
        key.prefix,
        key.name,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        key.rotated_from,
        scope_to_json(key.scope),
        key.version,
    )


def key_from_row(row: Sequence[Any]) -> KeyRecord:
    key_id = row[0]
    return KeyRecord(
        key_id=key_id,
        tenant_id=row[1],
        key_hash=row[2],
        prefix=row[3],
        name=row[4],
        created_at=float(row[5]),
        expires_at=None if row[6] is None else float(row[6]),
        revoked_at=None if row[7] is None else float(row[7]),
        rotated_from=row[8],
        scope=scope_from_json(key_id, row[9]),
        version=int(row[10]),
    )


def tenant_from_row(row: Sequence[Any]) -> TenantRecord:
    return TenantRecord(
        policy=policy_from_json(row[0], row[1]),
        version=int(row[2]),
        created_at=float(row[3]),
        updated_at=float(row[4]),
    )

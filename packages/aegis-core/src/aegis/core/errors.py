"""The errors of aegis-core.

Every error subclasses :class:`AegisError` and, where one fits, the nearest builtin::

    AegisError(Exception)
    ├── ConfigError(AegisError, ValueError)      bad policy, price table or setting; .field
    │   └── PolicyError                          .tenant_id
    ├── InvalidRequest(AegisError, ValueError)   a call the Gate cannot bound; .param
    ├── Denied(AegisError)                       the Gate refused a call; .reason, .tenant_id
    │   ├── PolicyDenied                         model or capability not allowed
    │   ├── BudgetExceeded                       .budget, .available_nanos, .resets_at
    │   ├── RateLimited                          .limit, .retry_after_s: retry later
    │   └── UnknownModelDenied                   no price, so no budget can be kept
    ├── LedgerError(AegisError)
    │   ├── DuplicateRequest                     request_id already in flight or already charged
    │   ├── HoldNotFound(LedgerError, KeyError)
    │   ├── HoldAlreadyResolved                  .state
    │   └── LedgerUnavailable                    the store cannot be reached: fail closed
    ├── PricingError(AegisError)
    │   └── UnknownModel(PricingError, KeyError) .model
    ├── ReceiptError(AegisError)
    │   └── ReceiptSinkUnavailable               receipts cannot be written: fail closed
    │       └── TrailLocked                      another process writes this trail
    └── StoreError(AegisError)                   the control-plane store (tenants and keys)
        ├── NotInStore(StoreError, KeyError)     no such tenant or key; .kind, .id
        ├── AlreadyInStore(StoreError)           a tenant or key with that id exists
        ├── VersionConflict(StoreError)          changed meanwhile; .current_version
        └── StoreUnavailable                     the store cannot be reached: fail closed
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AegisError",
    "AlreadyInStore",
    "BudgetExceeded",
    "ConfigError",
    "Denied",
    "DuplicateRequest",
    "HoldAlreadyResolved",
    "HoldNotFound",
    "InvalidRequest",
    "LedgerError",
    "LedgerUnavailable",
    "NotInStore",
    "PolicyDenied",
    "PolicyError",
    "PricingError",
    "RateLimited",
    "ReceiptError",
    "ReceiptSinkUnavailable",
    "StoreError",
    "StoreUnavailable",
    "TrailLocked",
    "UnknownModel",
    "UnknownModelDenied",
    "VersionConflict",
]


class AegisError(Exception):
    """Root of every error raised by Aegis."""

    receipt_id: str | None = None
    """Set by the Gate on a refusal it receipted: the id of that ``denied`` receipt (so the
    answer to the refused call can name it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(AegisError, ValueError):
    """A configuration value (policy, price table, setting) is invalid."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PolicyError(ConfigError):
    """A tenant's policy is invalid; names the tenant and the field."""

    def __init__(self, tenant_id: str, field: str, problem: str) -> None:
        super().__init__(f"policy for tenant {tenant_id!r}: {field}: {problem}", field=field)
        self.tenant_id = tenant_id
        self.problem = problem


class InvalidRequest(AegisError, ValueError):
    """The call's own numbers are out of range (negative or absurd token counts)."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class Denied(AegisError):
    """The Gate refused a call before it reached a provider."""

    code: str = "denied"

    def __init__(self, message: str, *, tenant_id: str, reason: str) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.reason = reason


class PolicyDenied(Denied):
    """The tenant's policy does not allow this model or capability."""

    code = "policy_denied"


class UnknownModelDenied(Denied):
    """The model has no price, so no budget can be kept for it."""

    code = "unknown_model"


class ModelRetiredDenied(Denied):
    """The provider no longer serves the model; the message names its successor."""

    code = "model_retired"

    def __init__(
        self, message: str, *, tenant_id: str, reason: str, successor: str | None = None
    ) -> None:
        super().__init__(message, tenant_id=tenant_id, reason=reason)
        self.successor = successor


class BudgetExceeded(Denied):
    """A hard-stop budget cannot hold the worst-case cost of the call."""

    code = "budget_exceeded"

    def __init__(
        self,
        *,
        tenant_id: str,
        budget: str,
        requested_nanos: int,
        available_nanos: int,
        limit_nanos: int,
        resets_at: datetime | None,
    ) -> None:
        from aegis.core.money import format_usd  # local: money imports errors

        when = f"; resets at {resets_at.isoformat()}" if resets_at else ""
        super().__init__(
            f"budget {budget} exceeded: call needs up to ${format_usd(requested_nanos)}, "
            f"${format_usd(available_nanos)} of ${format_usd(limit_nanos)} remains{when}",
            tenant_id=tenant_id,
            reason=f"budget_exceeded:{budget}",
        )
        self.budget = budget
        self.requested_nanos = requested_nanos
        self.available_nanos = available_nanos
        self.limit_nanos = limit_nanos
        self.resets_at = resets_at


class RateLimited(Denied):
    """A rate limit (requests or tokens per minute, calls in flight) cannot take the call now;
    unlike a budget, waiting ``retry_after_s`` may help."""

    code = "rate_limit_exceeded"

    def __init__(
        self,
        *,
        tenant_id: str,
        limit: str,
        requested: int,
        available: int,
        limit_value: int,
        retry_after_s: int,
    ) -> None:
        super().__init__(
            f"rate limit {limit} reached: the call needs {requested}, {available} of "
            f"{limit_value} remains; retry after {retry_after_s}s",
            tenant_id=tenant_id,
            reason=f"rate_limited:{limit}",
        )
        self.limit = limit
        """``rpm``, ``tpm`` or ``max_in_flight``, with the model pattern when the limit has one
        (``rpm:gpt-4o*``)."""
        self.requested = requested
        self.available = available
        self.limit_value = limit_value
        self.retry_after_s = retry_after_s


class LedgerError(AegisError):
    """A ledger operation failed."""


class DuplicateRequest(LedgerError):
    """The request id is already in flight or already charged; it is never charged twice."""

    def __init__(self, request_id: str, state: str) -> None:
        super().__init__(f"request {request_id!r} is already {state}")
        self.request_id = request_id
        self.state = state


class HoldNotFound(LedgerError, KeyError):
    """No reservation has this id."""

    def __str__(self) -> str:
        return self.message


class HoldAlreadyResolved(LedgerError):
    """The reservation was already committed, released or expired."""

    def __init__(self, hold_id: str, state: str) -> None:
        super().__init__(f"reservation {hold_id!r} is already {state}")
        self.hold_id = hold_id
        self.state = state


class LedgerUnavailable(LedgerError):
    """The ledger's store cannot be reached; the call must be refused, not waved through."""


class PricingError(AegisError):
    """Pricing failed."""


class UnknownModel(PricingError, KeyError):
    """The price table has no entry (nor alias) for this model."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no price for model {model!r}")
        self.model = model

    def __str__(self) -> str:
        return self.message


class ReceiptError(AegisError):
    """A receipt could not be produced, written or verified."""


class ReceiptSinkUnavailable(ReceiptError):
    """Receipts cannot be written; governed calls must be refused until they can."""


class StoreError(AegisError):
    """The control-plane store (tenants, policies, virtual keys) refused or failed."""


class NotInStore(StoreError, KeyError):
    """No tenant or key with that id."""

    def __init__(self, kind: str, id_: str) -> None:
        super().__init__(f"no {kind} {id_!r}")
        self.kind = kind
        self.id = id_

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class AlreadyInStore(StoreError):
    """A tenant or key with that id already exists."""

    def __init__(self, kind: str, id_: str) -> None:
        super().__init__(f"{kind} {id_!r} already exists")
        self.kind = kind
        self.id = id_


class VersionConflict(StoreError):
    """The record changed since the version the caller read: re-read and retry."""

    def __init__(self, kind: str, id_: str, *, expected: int, current: int) -> None:
        super().__init__(
            f"{kind} {id_!r} is at version {current}, not {expected}: it changed meanwhile "
            "(read it again and retry)"
        )
        self.kind = kind
        self.id = id_
        self.expected_version = expected
        self.current_version = current


class StoreUnavailable(StoreError):
    """The store cannot be reached or failed: callers refuse (fail closed)."""


class TrailLocked(ReceiptSinkUnavailable):
    """Another process holds this trail's writer lock (one writer per chain)."""

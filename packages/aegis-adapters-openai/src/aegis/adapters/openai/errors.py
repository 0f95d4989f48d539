"""OpenAI's error body, the adapter's own error, and the retry rules the SDK applies.

Every error OpenAI sends, and every error a faithful OpenAI-compatible server sends, has the
body ``{"error": {"message", "type", "param", "code"}}``; the SDK reads ``body.get("error",
body)`` and raises one exception class per status (400, 401, 403, 404, 409, 422, 429, >=500).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aegis.core import (
    AegisError,
    BudgetExceeded,
    Denied,
    DuplicateRequest,
    LedgerError,
    RateLimited,
)

__all__ = [
    "MAX_RETRY_AFTER_S",
    "NEAR_RESET_S",
    "ErrorReply",
    "InvalidRequestBody",
    "OpenAIErrorInfo",
    "error_body",
    "error_for",
    "parse_error_body",
    "retry_after_s",
    "should_retry",
]

NEAR_RESET_S: Final = 3600
"""A budget that resets within this many seconds gets a ``retry-after``."""
MAX_RETRY_AFTER_S: Final = 120.0
"""The SDK ignores a server's retry-after above this and backs off on its own."""


class InvalidRequestBody(AegisError, ValueError):
    """A request body the adapter cannot bound the cost of (the proxy answers 400)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class OpenAIErrorInfo:
    """The fields of an OpenAI error body."""

    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """A refusal as a server answers it: status, headers, and the fields of its body (which
    :attr:`body` lays out in OpenAI's shape; other APIs lay the same fields out their way)."""

    status: int
    message: str
    type: str
    code: str | None
    headers: Mapping[str, str]
    param: str | None = None

    @property
    def body(self) -> bytes:
        """The JSON body in OpenAI's error shape."""
        error = error_body(self.message, type=self.type, code=self.code, param=self.param)
        return json.dumps(error).encode()


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The JSON body OpenAI sends with an error status."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def parse_error_body(body: bytes | str | Mapping[str, Any] | None) -> OpenAIErrorInfo:
    """Read an error body the way the SDK does (``body.get("error", body)``), tolerating junk."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return OpenAIErrorInfo(message=raw.strip() or "unknown error")
    if not isinstance(data, Mapping):
        return OpenAIErrorInfo(message="unknown error")
    inner = data.get("error", data)
    if not isinstance(inner, Mapping):
        return OpenAIErrorInfo(message=str(inner))

    def text(key: str) -> str | None:
        value = inner.get(key)
        return None if value is None else str(value)

    return OpenAIErrorInfo(
        message=text("message") or "unknown error",
        type=text("type"),
        param=text("param"),
        code=text("code"),
    )


def error_for(exc: AegisError, *, now: float | None = None) -> ErrorReply:
    """The OpenAI-shaped error for an Aegis refusal.

    Refusals carry ``x-should-retry: false``: the SDK would otherwise retry a 429 twice, and a
    budget that is spent stays spent. A budget refusal has ``type: "budget_exceeded"`` and the
    budget's name as ``code``, adds ``x-aegis-budget`` and, when the budget resets,
    ``x-aegis-resets-at`` (ISO 8601) and, when that is within :data:`NEAR_RESET_S`,
    ``retry-after`` in seconds (for clients that schedule their own retry).

    A policy refusal (403 ``permission_error``) has the Gate's reason as ``code``
    (``model_not_allowed``, ``capability_not_allowed``, ``unknown_model``, ``unknown_tenant``).

    A rate limit is the one refusal worth retrying: ``type: "rate_limit_exceeded"``, the
    limit's name as ``code``, ``retry-after`` (and ``retry-after-ms``, which the SDK reads
    first) and no ``x-should-retry: false``, so the SDK retries after the wait it names.
    """
    headers = {"x-should-retry": "false"}
    message = exc.message
    if isinstance(exc, RateLimited):
        seconds = exc.retry_after_s
        headers = {"retry-after": str(seconds), "retry-after-ms": str(seconds * 1000)}
        kind_of = exc.limit.split(":", 1)[0]
        twin = {"rpm": "requests", "tpm": "tokens"}.get(kind_of)
        if twin is not None:
            headers[f"x-ratelimit-limit-{twin}"] = str(exc.limit_value)
            headers[f"x-ratelimit-remaining-{twin}"] = str(exc.available)
            headers[f"x-ratelimit-reset-{twin}"] = f"{seconds}s"
        status, kind, code = 429, "rate_limit_exceeded", exc.limit
    elif isinstance(exc, BudgetExceeded):
        status, kind, code = 429, "budget_exceeded", exc.budget
        # Said in words too: a client that ignores x-should-retry still shows a person why.
        message = f"{exc.message}; this is a budget stop: retrying will not help before it resets"
        headers["x-aegis-budget"] = exc.budget
        if exc.resets_at is not None:
            headers["x-aegis-resets-at"] = exc.resets_at.isoformat()
            wait = exc.resets_at.timestamp() - (time.time() if now is None else now)
            if 0 < wait <= NEAR_RESET_S:
                headers["retry-after"] = str(math.ceil(wait))
    elif isinstance(exc, Denied):
        # The reason (model_not_allowed, capability_not_allowed, unknown_model, ...) is what a
        # client can act on; the class name (policy_denied) is not.
        status, kind, code = 403, "permission_error", exc.reason
    elif isinstance(exc, InvalidRequestBody):
        return ErrorReply(400, exc.message, "invalid_request_error", None, headers, exc.param)
    elif isinstance(exc, DuplicateRequest):
        status, kind, code = 409, "invalid_request_error", "duplicate_request"
    elif isinstance(exc, LedgerError):
        status, kind, code = 503, "server_error", "ledger_unavailable"
    else:
        status, kind, code = 503, "server_error", "governance_unavailable"
    return ErrorReply(status, message, kind, code, headers)


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The delay a server asks for: ``retry-after-ms``, then ``retry-after`` (seconds or an
    HTTP date), as the SDK parses them; ``None`` when absent or unparseable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - (time.time() if now is None else now)


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """Whether the SDK retries this status: ``x-should-retry`` decides when present; then
    408, 409, 429 and every 5xx are retried."""
    delay = retry_after_s(headers)
    if delay is not None and math.isfinite(delay) and delay > MAX_RETRY_AFTER_S:
        return False
    explicit = headers.get("x-should-retry")
    if explicit == "true":
        return True
    if explicit == "false":
        return False
    return status in (408, 409, 429) or status >= 500

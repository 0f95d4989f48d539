"""Anthropic's error body, the adapter's own errors, and the error each Aegis refusal becomes.

Anthropic answers every failed call with ``{"type": "error", "error": {"type", "message"},
"request_id"}`` and an HTTP status that matches the error type (:data:`ERROR_STATUS`); the SDK
picks its exception class by status. ::

    AegisError(Exception)                                  (aegis.core)
    └── AnthropicAdapterError(AegisError)
        ├── InvalidRequestBody(AnthropicAdapterError, ValueError)   400; .param names the field
        ├── TranslationError(AnthropicAdapterError, ValueError)     400: an OpenAI chat request
        │                                                           Claude cannot serve as sent
        └── WireError(AnthropicAdapterError, ValueError)            malformed Anthropic JSON/SSE

Errors raised by the ``anthropic`` SDK are re-raised unchanged by the SDK-backed functions.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aegis.core import (
    AegisError,
    BudgetExceeded,
    Denied,
    DuplicateRequest,
    InvalidRequest,
    LedgerError,
    RateLimited,
)

__all__ = [
    "ERROR_STATUS",
    "MAX_MESSAGE_CHARS",
    "NEAR_RESET_S",
    "AnthropicAdapterError",
    "AnthropicErrorInfo",
    "InvalidRequestBody",
    "TranslationError",
    "WireError",
    "WireErrorResponse",
    "error_body",
    "error_for",
    "error_type_for_status",
    "parse_error_body",
]

ERROR_STATUS: Final[Mapping[str, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""The HTTP status Anthropic sends with each error type."""
_TYPE_BY_STATUS: Final[Mapping[int, str]] = {s: t for t, s in ERROR_STATUS.items()}
NEAR_RESET_S: Final = 3600
"""A budget that resets within this many seconds gets a ``retry-after``."""
MAX_MESSAGE_CHARS: Final = 2_000


class AnthropicAdapterError(AegisError):
    """Root of the errors raised by this package."""


class InvalidRequestBody(AnthropicAdapterError, ValueError):
    """A Messages body whose cost cannot be bounded, or that the API itself would refuse
    (the proxy answers 400 ``invalid_request_error``)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        """The offending field, as a path: ``messages.2.content.1.source``."""


class TranslationError(AnthropicAdapterError, ValueError):
    """An OpenAI chat request cannot be expressed as a Messages request (an HTTP 400 to the
    client)."""

    def __init__(self, message: str, *, param: str, code: str = "unsupported_parameter") -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        """The offending OpenAI field, as a path: ``messages[2].content[1].type``."""
        self.code = code
        """``unsupported_parameter`` (valid OpenAI, no Anthropic equivalent) or
        ``invalid_value``."""


class WireError(AnthropicAdapterError, ValueError):
    """An Anthropic response body or stream is not the JSON the Messages API documents."""


@dataclass(frozen=True, slots=True)
class AnthropicErrorInfo:
    """A failed Anthropic call, as its error body describes it."""

    status: int
    """The HTTP status of the answer."""
    type: str
    """``error.type``: ``invalid_request_error``, ``overloaded_error`` ..."""
    message: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class WireErrorResponse:
    """An error as Anthropic sends it: status, JSON body, headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def error_type_for_status(status: int) -> str:
    """The error type Anthropic uses with ``status`` (``api_error`` for an unknown 5xx,
    ``invalid_request_error`` for an unknown 4xx)."""
    kind = _TYPE_BY_STATUS.get(status)
    if kind is not None:
        return kind
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(type: str, message: str, *, request_id: str | None = None) -> dict[str, Any]:
    """The JSON body Anthropic sends with an error status."""
    body: dict[str, Any] = {"type": "error", "error": {"type": type, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def parse_error_body(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
) -> AnthropicErrorInfo:
    """Read an Anthropic error answer (any body, even a non-JSON one, yields an error; its
    type falls back to the one the status stands for)."""
    data: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text)
        except ValueError:
            data = {"error": {"message": text.strip()}}
    inner = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(inner, Mapping):
        inner = {}
    kind = inner.get("type")
    message = inner.get("message")
    request_id = data.get("request_id") if isinstance(data, Mapping) else None
    if not isinstance(request_id, str) and headers is not None:
        request_id = headers.get("request-id")
    return AnthropicErrorInfo(
        status=status,
        type=kind if isinstance(kind, str) and kind else error_type_for_status(status),
        message=(message if isinstance(message, str) else "")[:MAX_MESSAGE_CHARS]
        or f"upstream error {status}",
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _json(type: str, message: str) -> bytes:
    return json.dumps(error_body(type, message), ensure_ascii=False).encode()


def error_for(exc: AegisError, *, now: float | None = None) -> WireErrorResponse:
    """The Anthropic-shaped error for an Aegis refusal.

    A budget refusal is ``429 rate_limit_error`` whose message names the budget, with
    ``x-should-retry: false`` (the SDK retries 429s otherwise, and a spent budget stays spent),
    ``x-aegis-budget``, and when the budget resets, ``x-aegis-resets-at``; ``retry-after`` only
    when that reset is within :data:`NEAR_RESET_S`. A rate limit (which a retry can pass) is
    ``429 rate_limit_error`` with ``retry-after`` and without ``x-should-retry: false``.
    """
    no_retry = {"x-should-retry": "false"}
    if isinstance(exc, RateLimited):
        headers = {"retry-after": str(exc.retry_after_s)}
        return WireErrorResponse(429, _json("rate_limit_error", exc.message), headers)
    if isinstance(exc, BudgetExceeded):
        headers = {**no_retry, "x-aegis-budget": exc.budget}
        if exc.resets_at is not None:
            headers["x-aegis-resets-at"] = exc.resets_at.isoformat()
            wait = exc.resets_at.timestamp() - (time.time() if now is None else now)
            if 0 < wait <= NEAR_RESET_S:
                headers["retry-after"] = str(math.ceil(wait))
        message = f"budget {exc.budget} exceeded: {exc.message}"
        return WireErrorResponse(429, _json("rate_limit_error", message), headers)
    if isinstance(exc, Denied):
        return WireErrorResponse(403, _json("permission_error", exc.message), no_retry)
    if isinstance(exc, InvalidRequestBody | InvalidRequest):
        return WireErrorResponse(400, _json("invalid_request_error", exc.message), no_retry)
    if isinstance(exc, DuplicateRequest):
        return WireErrorResponse(409, _json("invalid_request_error", exc.message), no_retry)
    if isinstance(exc, LedgerError):
        return WireErrorResponse(503, _json("api_error", "governance ledger unavailable"), {})
    return WireErrorResponse(503, _json("api_error", "governance unavailable"), {})

"""The proxy's errors, and the one place they become HTTP answers.

::

    ProxyError(AegisError)
    ├── BadRequest           400, names the field (``param``)
    ├── Unauthorized         401
    ├── NotFound             404
    ├── Conflict             409  (idempotency key in use)
    ├── PayloadTooLarge      413
    ├── Unprocessable        422  (idempotency key reused with another body)
    └── UpstreamUnavailable  502/503/504 when every provider failed

Errors of aegis-core map as :func:`aegis.adapters.openai.error_for` shapes them
(``BudgetExceeded`` → 429 with ``x-should-retry: false``, ``Denied`` → 403,
``DuplicateRequest`` → 409, ledger or receipt trouble → 503); the control-plane store's map as
``NotInStore`` → 404, ``AlreadyInStore``/``VersionConflict`` → 409, ``StoreUnavailable`` → 503,
and an invalid policy (``PolicyError``) → 400 naming the field (``policy.<field>``). Bodies
use OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}`` so SDKs surface
them well.
"""

from __future__ import annotations

import json
import logging
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from aegis.adapters.gemini import GOOGLE_STATUS
from aegis.adapters.openai import error_for
from aegis.core import (
    AegisError,
    AlreadyInStore,
    InvalidRequest,
    NotInStore,
    PolicyError,
    StoreUnavailable,
    VersionConflict,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "NotFound",
    "PayloadTooLarge",
    "ProxyError",
    "Unauthorized",
    "Unprocessable",
    "UpstreamUnavailable",
    "error_middleware",
    "error_response",
]

logger = logging.getLogger(__name__)


class ProxyError(AegisError):
    """An answer the proxy gives instead of a provider's."""

    status = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class BadRequest(ProxyError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(ProxyError):
    status = 401
    type = "authentication_error"


class NotFound(ProxyError):
    status = 404
    type = "not_found_error"


class Conflict(ProxyError):
    status = 409
    type = "conflict_error"


class PayloadTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"


class Unprocessable(ProxyError):
    status = 422
    type = "invalid_request_error"


class UpstreamUnavailable(ProxyError):
    """Every provider that could serve the call failed."""

    type = "upstream_error"

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message, code="upstream_unavailable")
        self.status = status


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An answer in OpenAI's error shape."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def response_for(exc: AegisError) -> web.Response:
    """Map any Aegis error to its HTTP answer (core errors as the OpenAI adapter shapes them)."""
    if isinstance(exc, ProxyError):
        return error_response(
            exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code
        )
    if isinstance(exc, InvalidRequest):
        return error_response(400, exc.message, type="invalid_request_error", param=exc.param)
    if isinstance(exc, PolicyError):
        return error_response(
            400,
            f"policy.{exc.field}: {exc.problem}",
            type="invalid_request_error",
            param=f"policy.{exc.field}",
            code="invalid_policy",
        )
    if isinstance(exc, NotInStore):
        return error_response(
            404, exc.message, type="not_found_error", code=f"{exc.kind}_not_found"
        )
    if isinstance(exc, AlreadyInStore):
        return error_response(409, exc.message, type="conflict_error", code=f"{exc.kind}_exists")
    if isinstance(exc, VersionConflict):
        return error_response(409, exc.message, type="conflict_error", code="version_conflict")
    if isinstance(exc, StoreUnavailable):
        return error_response(503, exc.message, type="server_error", code="store_unavailable")
    wire = error_for(exc)
    return web.Response(
        status=wire.status, body=wire.body, headers=wire.headers, content_type="application/json"
    )


_HTTP_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the caller's API's error shape: OpenAI's, or Google's on the
    Gemini routes. The client's ``x-request-id`` is echoed on errors too."""
    try:
        return await handler(request)
    except AegisError as exc:
        response = response_for(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own answers (unknown path, wrong method, body too large) are plain text.
        response = error_response(
            exc.status,
            f"{exc.reason}: {request.method} {request.path}",
            type=_HTTP_TYPES.get(exc.status, "invalid_request_error"),
            code=exc.reason.lower().replace(" ", "_"),
        )
    except Exception:
        logger.exception("unhandled error on %s", request.path)
        response = error_response(500, "internal error", type="server_error")
    if _GEMINI_ROUTE.match(request.path):
        response = _google_shaped(response)
    request_id = request.headers.get("x-request-id")
    if request_id and len(request_id) <= 200 and request_id.isprintable():
        response.headers["x-request-id"] = request_id
    return response


_GEMINI_ROUTE = re.compile(r"^/(v1beta|v1alpha|v1)/models/[^/]+:")


def _google_shaped(response: web.Response) -> web.Response:
    """The same error as google-genai expects it: ``{"error": {code, message, status}}``."""
    assert isinstance(response.body, bytes)
    message = json.loads(response.body)["error"]["message"]
    body = {
        "error": {
            "code": response.status,
            "message": message,
            "status": GOOGLE_STATUS.get(response.status, "UNKNOWN"),
        }
    }
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return web.Response(status=response.status, body=json.dumps(body).encode(), headers=headers)

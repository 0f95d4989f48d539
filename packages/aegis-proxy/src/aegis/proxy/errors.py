"""The proxy's errors, and the one place they become HTTP answers.

::

    ProxyError(AegisError)
    ├── ConfigProblems(ProxyError, ValueError)  a config file's problems, each with its place
    └── HttpError                               an answer the proxy gives instead of a provider's
        ├── BadRequest           400, names the field (``param``)
        ├── Unauthorized         401
        ├── Forbidden            403  (a tenant key on the admin API)
        ├── NotFound             404
        ├── Conflict             409  (idempotency key in use)
        ├── PayloadTooLarge      413
        ├── Unprocessable        422  (idempotency key reused with another body)
        └── UpstreamUnavailable  502/503/504 when every provider failed

Errors of aegis-core map as :func:`aegis.adapters.openai.error_for` classifies them
(``BudgetExceeded`` → 429 with ``x-should-retry: false``, on the Gemini routes 400
``FAILED_PRECONDITION``, which Google's clients do not retry (see :mod:`aegis.proxy.apis`);
``Denied`` → 403, ``DuplicateRequest`` → 409, ledger or receipt trouble → 503). The body is
laid out in the caller's API (:mod:`aegis.proxy.apis`): OpenAI's
``{"error": {message, type, param, code}}``, Google's on the Gemini routes, Anthropic's on
the Messages routes (where refusals map as
:func:`aegis.adapters.anthropic.error_for` classifies them: a budget stop is ``429
rate_limit_error`` naming the budget, ``x-should-retry: false``, ``retry-after`` only when the
budget resets within the hour). The control-plane store's errors map as ``NotInStore`` →
404, ``AlreadyInStore``/``VersionConflict`` → 409, ``StoreUnavailable`` → 503, and an invalid
policy (``PolicyError``) → 400 naming the field (``policy.<field>``).
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from aegis.adapters.anthropic import error_for as anthropic_error_for
from aegis.adapters.openai import error_for
from aegis.core import (
    AegisError,
    AlreadyInStore,
    BudgetExceeded,
    InvalidRequest,
    NotInStore,
    PolicyError,
    StoreUnavailable,
    VersionConflict,
    new_id,
)
from aegis.proxy.apis import ANTHROPIC, OPENAI, REQUEST_ID, ClientApi, api_of

__all__ = [
    "MAX_ID_LENGTH",
    "BadRequest",
    "ConfigProblems",
    "Conflict",
    "Forbidden",
    "HttpError",
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

MAX_ID_LENGTH: Final = 200
"""The longest ``x-request-id`` / ``x-run-id`` taken from a client."""


class ProxyError(AegisError):
    """Root of aegis-proxy's errors."""


class ConfigProblems(ProxyError, ValueError):
    """A configuration file has problems; ``problems`` lists each with its place."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class HttpError(ProxyError):
    """An answer the proxy gives instead of a provider's."""

    status = 500
    type = "server_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class BadRequest(HttpError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(HttpError):
    status = 401
    type = "authentication_error"


class Forbidden(HttpError):
    """The key is valid but may not do this (a tenant key on the admin API)."""

    status = 403
    type = "permission_error"


class NotFound(HttpError):
    status = 404
    type = "not_found_error"


class Conflict(HttpError):
    status = 409
    type = "conflict_error"


class PayloadTooLarge(HttpError):
    status = 413
    type = "invalid_request_error"


class Unprocessable(HttpError):
    status = 422
    type = "invalid_request_error"


class UpstreamUnavailable(HttpError):
    """Every provider that could serve the call failed."""

    type = "upstream_error"

    def __init__(self, message: str, *, status: int = 502, receipt_id: str | None = None) -> None:
        super().__init__(message, code="upstream_unavailable")
        self.status = status
        self.receipt_id = receipt_id
        """The last attempt's receipt."""


def error_response(
    status: int,
    message: str,
    *,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    api: ClientApi | None = None,
    status_name: str | None = None,
) -> web.Response:
    """An error answer laid out in ``api`` (OpenAI's by default)."""
    body = (api or OPENAI).error_body(
        status, message, type=type, code=code, param=param, status_name=status_name
    )
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def response_for(exc: AegisError, api: ClientApi) -> web.Response:
    """Map any Aegis error to its HTTP answer in ``api``'s shape."""
    if isinstance(exc, HttpError):
        return error_response(
            exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code, api=api
        )
    if isinstance(exc, InvalidRequest):
        return error_response(
            400, exc.message, type="invalid_request_error", param=exc.param, api=api
        )
    if isinstance(exc, PolicyError):
        return error_response(
            400,
            f"policy.{exc.field}: {exc.problem}",
            type="invalid_request_error",
            param=f"policy.{exc.field}",
            code="invalid_policy",
            api=api,
        )
    if isinstance(exc, NotInStore):
        return error_response(
            404, exc.message, type="not_found_error", code=f"{exc.kind}_not_found", api=api
        )
    if isinstance(exc, AlreadyInStore):
        return error_response(
            409, exc.message, type="conflict_error", code=f"{exc.kind}_exists", api=api
        )
    if isinstance(exc, VersionConflict):
        return error_response(
            409, exc.message, type="conflict_error", code="version_conflict", api=api
        )
    if isinstance(exc, StoreUnavailable):
        return error_response(
            503, exc.message, type="server_error", code="store_unavailable", api=api
        )
    if api is ANTHROPIC:
        # Anthropic's SDKs: a budget stop is a 429 they must not retry (x-should-retry: false),
        # with retry-after only where waiting can help; the adapter decides it.
        wire = anthropic_error_for(exc)
        return web.Response(
            status=wire.status,
            body=wire.body,
            content_type="application/json",
            headers=dict(wire.headers),
        )
    reply = error_for(exc)
    status, status_name = reply.status, None
    if isinstance(exc, BudgetExceeded):
        # Each API's clients have their own retry rules: the answer none of them retries.
        status, status_name = api.budget_stop
    return error_response(
        status,
        reply.message,
        type=reply.type,
        code=reply.code,
        param=reply.param,
        headers=dict(reply.headers),
        api=api,
        status_name=status_name,
    )


_HTTP_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error"}


def _request_id(request: web.Request) -> str:
    """The client's ``x-request-id`` when it is usable, else a new one (a bad one is refused
    with 400 by the handler, and that answer still needs an id)."""
    value = request.headers.get("x-request-id")
    if value and len(value) <= MAX_ID_LENGTH and value.isprintable():
        return value
    return new_id()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into the caller's API's error shape. Every answer made here carries
    the request's ``x-request-id`` and, when the refusal was receipted, ``x-aegis-receipt-id``
    (the Gate writes a receipt for every refusal it makes)."""
    request_id = request[REQUEST_ID] = _request_id(request)
    receipt_id: str | None = None
    try:
        answer = await handler(request)
        if not answer.prepared and "x-request-id" not in answer.headers:
            answer.headers["x-request-id"] = request_id  # the proxy's own answers too
        return answer
    except AegisError as exc:
        response = response_for(exc, api_of(request))
        receipt_id = exc.receipt_id
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own answers (unknown path, wrong method, body too large) are plain text.
        response = error_response(
            exc.status,
            f"{exc.reason}: {request.method} {request.path}",
            type=_HTTP_TYPES.get(exc.status, "invalid_request_error"),
            code=exc.reason.lower().replace(" ", "_"),
            api=api_of(request),
        )
    except Exception:
        logger.exception("unhandled error on %s", request.path)
        response = error_response(500, "internal error", type="server_error", api=api_of(request))
    response.headers["x-request-id"] = request_id
    if receipt_id is not None:
        response.headers["x-aegis-receipt-id"] = receipt_id
    return response

"""What every governed endpoint does first: authenticate, read and parse the body, name the
request and the run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from aegis.core import KeyScope
from aegis.proxy.apis import REQUEST_ID
from aegis.proxy.errors import MAX_ID_LENGTH, BadRequest, PayloadTooLarge
from aegis.proxy.state import KEYS, SETTINGS

__all__ = ["IncomingCall", "read_call", "request_id_of"]


@dataclass(slots=True)
class IncomingCall:
    """A request that passed authentication and parsing."""

    tenant_id: str
    request_id: str
    run_id: str | None
    raw: bytes
    """The body as the client sent it (forwarded byte for byte where nothing changes)."""
    body: dict[str, Any]
    key: KeyScope | None = None
    """The store key's scope (its overrides narrow the tenant's policy at the Gate)."""


def _header_id(request: web.Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise BadRequest(f"{name} must be 1-{MAX_ID_LENGTH} printable characters", param=name)
    return value


def request_id_of(request: web.Request) -> str:
    """The request's id: the client's ``x-request-id`` (400 when unusable), else the one the
    error middleware made for every answer to carry."""
    return _header_id(request, "x-request-id") or request[REQUEST_ID]


async def read_call(request: web.Request) -> IncomingCall:
    """Authenticate and parse; raises 400/401/413 in OpenAI's error shape."""
    identity = await request.app[KEYS].authenticate(request)
    limit = request.app[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes", code="body_too_large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"request body is larger than {limit} bytes", code="body_too_large"
        ) from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise BadRequest("request body is nested too deeply", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be true or false", param="stream")
    return IncomingCall(
        tenant_id=identity.tenant_id,
        key=identity.key,
        request_id=request_id_of(request),
        run_id=_header_id(request, "x-run-id"),
        raw=raw,
        body=body,
    )

"""The APIs the proxy speaks to clients, as far as its own errors go: OpenAI's, Google's and
Anthropic's.

An error the proxy words itself (a refusal, a bad request, every provider down) is laid out in
the caller's API: OpenAI's ``{"error": {message, type, param, code}}``, google.rpc's
``{"error": {code, message, status}}`` on the Gemini routes, or Anthropic's ``{"type": "error",
"error": {type, message}}`` on the Messages routes. Each route names its API
(:data:`API`); aiohttp's own answers (an unknown path) are placed by their path.
"""

from __future__ import annotations

import json
import re
from typing import Final, Protocol

from aiohttp import web

from aegis.adapters.anthropic import error_body as anthropic_error_body, error_type_for_status
from aegis.adapters.gemini import GOOGLE_STATUS

__all__ = ["ANTHROPIC", "API", "GOOGLE", "OPENAI", "REQUEST_ID", "ClientApi", "api_of"]


class ClientApi(Protocol):
    """How one API lays out an error."""

    name: str
    budget_stop: tuple[int, str | None]
    """The status (and google.rpc status name) of a budget stop: one its clients never retry."""

    def error_body(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None,
        param: str | None,
        status_name: str | None = None,
    ) -> bytes: ...

    def stream_error(self, status: int, message: str) -> bytes:
        """The event that ends a started stream which failed."""
        ...


class _OpenAI:
    name = "openai"
    budget_stop: tuple[int, str | None] = (
        429,
        None,
    )  # with x-should-retry: false, which OpenAI's SDKs obey

    def error_body(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None,
        param: str | None,
        status_name: str | None = None,
    ) -> bytes:
        error = {"message": message, "type": type, "param": param, "code": code}
        return json.dumps({"error": error}).encode()

    def stream_error(self, status: int, message: str) -> bytes:
        # The SDK raises APIError for a chunk that carries "error", in chat and Responses.
        body = self.error_body(status, message, type="server_error", code=None, param=None)
        return b"data: " + body + b"\n\n"


class _Google:
    name = "google"
    budget_stop: tuple[int, str | None] = (
        400,
        "FAILED_PRECONDITION",
    )  # Google's clients retry every 429

    def error_body(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None,
        param: str | None,
        status_name: str | None = None,
    ) -> bytes:
        name = status_name or GOOGLE_STATUS.get(status, "UNKNOWN")
        error = {"code": status, "message": message, "status": name}
        return json.dumps({"error": error}).encode()

    def stream_error(self, status: int, message: str) -> bytes:
        body = self.error_body(status, message, type="", code=None, param=None)
        return b"data: " + body + b"\r\n\r\n"


class _Anthropic:
    name = "anthropic"
    # Unused: budget stops on the Messages routes are worded by the Anthropic adapter.
    budget_stop: tuple[int, str | None] = (429, None)

    def error_body(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None,
        param: str | None,
        status_name: str | None = None,
    ) -> bytes:
        # Anthropic's SDKs pick the exception by status; the type is the one it pairs with it.
        body = anthropic_error_body(error_type_for_status(status), message)
        return json.dumps(body, ensure_ascii=False).encode()

    def stream_error(self, status: int, message: str) -> bytes:
        # The SDK raises an APIStatusError for an ``error`` event, as Anthropic sends one.
        body = self.error_body(status, message, type="", code=None, param=None)
        return b"event: error\ndata: " + body + b"\n\n"


OPENAI: Final[ClientApi] = _OpenAI()
GOOGLE: Final[ClientApi] = _Google()
ANTHROPIC: Final[ClientApi] = _Anthropic()

API: web.RequestKey[ClientApi] = web.RequestKey("api")
"""Set by a handler to the API it serves (OpenAI's when unset)."""
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
"""The request's id (the client's ``x-request-id``, else one the proxy made), set before any
handler runs: every answer carries it, errors too."""

_GEMINI_PATH: Final = re.compile(r"^/(v1beta|v1alpha|v1)/models/[^/]+:")
_ANTHROPIC_PATH: Final = re.compile(r"^/v1/messages(/|$)")


def api_of(request: web.Request) -> ClientApi:
    """The API the caller speaks: the handler's, else (no handler ran) by the path."""
    if API in request:
        return request[API]
    if _ANTHROPIC_PATH.match(request.path):
        return ANTHROPIC
    return GOOGLE if _GEMINI_PATH.match(request.path) else OPENAI

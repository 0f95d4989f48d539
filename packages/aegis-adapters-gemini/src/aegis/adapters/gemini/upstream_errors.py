"""Gemini error bodies, and the OpenAI error each one becomes.

Gemini answers a failed call with ``{"error": {"code": 429, "message": "...", "status":
"RESOURCE_EXHAUSTED"}}`` (google.rpc.Status, HTTP status in ``code``); a body that is not
JSON keeps its text as the message. OpenAI clients expect ``{"error": {"message", "type",
"param", "code"}}`` with a status their SDK maps to an exception class; the HTTP status is kept
(so retry decisions carry over) and the Google status becomes the ``code``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aegis.core import openai_error_type

__all__ = ["GOOGLE_STATUS", "GeminiError", "openai_error_body", "parse_error_body"]

GOOGLE_STATUS: Final[Mapping[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The canonical google.rpc status Gemini uses with each HTTP status."""

_MAX_MESSAGE_CHARS: Final = 2_000


@dataclass(frozen=True, slots=True)
class GeminiError:
    """A failed Gemini call, as its error body describes it."""

    http_status: int
    message: str
    status: str
    """google.rpc status name: ``INVALID_ARGUMENT``, ``RESOURCE_EXHAUSTED`` ..."""


def parse_error_body(http_status: int, body: bytes | str | Mapping[str, Any]) -> GeminiError:
    """Read a Gemini error response (any body, even a non-JSON one, yields an error)."""
    data: Any = body
    if isinstance(body, bytes | str):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = {"message": text.strip()}
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # the array form of streamGenerateContent without alt=sse
    error = data.get("error", data) if isinstance(data, Mapping) else {}
    if not isinstance(error, Mapping):
        error = {"message": str(error)}
    message = error.get("message")
    status = error.get("status")
    return GeminiError(
        http_status=http_status,
        message=(message if isinstance(message, str) else "")[:_MAX_MESSAGE_CHARS]
        or f"upstream error {http_status}",
        status=status
        if isinstance(status, str) and status
        else GOOGLE_STATUS.get(http_status, "UNKNOWN"),
    )


def openai_error_body(error: GeminiError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OpenAI error body to answer an OpenAI client with."""
    status = error.http_status if 400 <= error.http_status <= 599 else 502
    kind = openai_error_type(status)
    return status, {
        "error": {
            "message": error.message,
            "type": kind,
            "param": None,
            "code": error.status.lower(),
        }
    }

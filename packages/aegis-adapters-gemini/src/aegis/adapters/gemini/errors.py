"""The errors of aegis-adapters-gemini.

::

    AegisError(Exception)                         (aegis.core)
    └── GeminiAdapterError(AegisError)
        ├── TranslationError(GeminiAdapterError, ValueError)   400: .param names the field
        ├── UnboundedRequest(GeminiAdapterError, ValueError)   400: a field that multiplies
        │                                                       cost cannot be read as Gemini does
        ├── ResponseTranslationError(GeminiAdapterError)       502: Gemini sent what OpenAI
        │                                                       chat completions cannot express
        └── WireError(GeminiAdapterError, ValueError)          malformed Gemini JSON or SSE

Errors raised by google-genai (``google.genai.errors.APIError``) are re-raised unchanged by the
SDK-backed functions; they are not wrapped.
"""

from __future__ import annotations

from typing import Any

from aegis.core import AegisError

__all__ = [
    "GeminiAdapterError",
    "ResponseTranslationError",
    "TranslationError",
    "UnboundedRequest",
    "WireError",
]


class GeminiAdapterError(AegisError):
    """Root of the errors raised by this package."""


class TranslationError(GeminiAdapterError, ValueError):
    """An OpenAI request cannot be expressed as a Gemini request (an HTTP 400 to the client)."""

    status_code: int = 400

    def __init__(self, message: str, *, param: str, code: str = "unsupported_parameter") -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        """The offending OpenAI field, as a path: ``messages[2].content[1].type``."""
        self.code = code
        """``unsupported_parameter`` (valid OpenAI, no Gemini equivalent) or ``invalid_value``."""

    def to_openai_error(self) -> dict[str, Any]:
        """The OpenAI error body for this error (``{"error": {...}}``)."""
        return {
            "error": {
                "message": self.message,
                "type": "invalid_request_error",
                "param": self.param,
                "code": self.code,
            }
        }

    def __repr__(self) -> str:
        return f"TranslationError({self.message!r}, param={self.param!r}, code={self.code!r})"


class ResponseTranslationError(GeminiAdapterError):
    """A Gemini response holds something an OpenAI chat completion cannot carry (HTTP 502)."""

    status_code: int = 502


class WireError(GeminiAdapterError, ValueError):
    """A Gemini response body or stream is not the JSON the REST API documents."""


class UnboundedRequest(GeminiAdapterError, ValueError):
    """A Gemini request with a field that multiplies its cost (``candidateCount``, output
    limits, a thinking budget) that cannot be read the way Gemini reads it: its worst case
    cannot be bounded, so it is refused (an HTTP 400), never defaulted."""

    status_code: int = 400

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param

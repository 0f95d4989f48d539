"""Make a request carry the output limit the Gate reserved for, and ask for streamed usage.

The upstream is what enforces the worst case: a request must reach it with the permit's output
limit, whether the client set none or the Gate lowered it. A streamed chat request must also
ask for ``stream_options.include_usage``, the only way to learn a stream's real usage; whether
the client asked for it itself decides if the final usage chunk is passed on.

Rewriting never re-serializes what it does not change: :meth:`RequestRewrite.to_bytes` appends
new top-level keys to the client's original bytes, so tools, schemas and messages reach the
upstream byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aegis.adapters.openai.terms import SEARCH_CALLS_RESERVED, billing_terms

__all__ = [
    "ChatLimitField",
    "RequestRewrite",
    "rewrite_chat_request",
    "rewrite_responses_request",
]

ChatLimitField = Literal["max_completion_tokens", "max_tokens"]
_CHAT_LIMIT_FIELDS: Final = ("max_completion_tokens", "max_tokens")


@dataclass(frozen=True, slots=True)
class RequestRewrite:
    """A request body as it must be sent upstream."""

    body: dict[str, Any]
    """The body to send: the caller's own object when nothing changed, else a shallow copy."""
    changes: dict[str, Any] = field(default_factory=dict)
    """Top-level keys that were added or replaced, with their new values."""
    added_only: bool = True
    """Every change is a key the original body did not have."""
    client_wants_usage: bool = False
    """The client itself asked for the streamed usage chunk (pass it on)."""

    def to_bytes(self, original: bytes | None = None) -> bytes:
        """The body as JSON bytes; with the client's ``original`` bytes, only the changes are
        serialized (appended before the closing brace) whenever no existing key changed."""
        if original is not None:
            if not self.changes:
                return original
            if self.added_only:
                end = original.rstrip()
                if end.endswith(b"}") and len(self.body) > len(self.changes):
                    extra = json.dumps(self.changes, separators=(",", ":")).encode()
                    return end[:-1] + b"," + extra[1:]
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


def _within(value: object, limit: int) -> bool:
    # Anything but an integer within the limit is replaced by the limit.
    return isinstance(value, int) and not isinstance(value, bool) and value <= limit


def _apply(body: Mapping[str, Any], changes: dict[str, Any], wants: bool) -> RequestRewrite:
    if not changes:
        return RequestRewrite(
            body=dict(body) if not isinstance(body, dict) else body, client_wants_usage=wants
        )
    added_only = not any(key in body for key in changes)
    return RequestRewrite(
        body={**body, **changes}, changes=changes, added_only=added_only, client_wants_usage=wants
    )


def rewrite_chat_request(
    body: Mapping[str, Any],
    *,
    max_output_tokens: int,
    limit_field: ChatLimitField = "max_completion_tokens",
) -> RequestRewrite:
    """A chat completions body that carries ``max_output_tokens`` per choice and, when
    streamed, asks for usage.

    Each limit field the client set is lowered to ``max_output_tokens`` if it is higher; a
    body with neither gets ``limit_field`` (``max_tokens`` for older OpenAI-compatible servers).
    """
    changes: dict[str, Any] = {}
    present = False
    for name in _CHAT_LIMIT_FIELDS:
        value = body.get(name)
        if value is not None:
            present = True
            if not _within(value, max_output_tokens):
                changes[name] = max_output_tokens
    if not present:
        changes[limit_field] = max_output_tokens
    wants = False
    if body.get("stream") is True:
        options = body.get("stream_options")
        wants = isinstance(options, Mapping) and options.get("include_usage") is True
        if not wants:
            merged = dict(options) if isinstance(options, Mapping) else {}
            merged["include_usage"] = True
            changes["stream_options"] = merged
    return _apply(body, changes, wants)


def rewrite_responses_request(body: Mapping[str, Any], *, max_output_tokens: int) -> RequestRewrite:
    """A Responses body that carries ``max_output_tokens`` (streams always report usage) and,
    when it offers a billed search tool without ``max_tool_calls``, the number of calls the
    reservation holds fees for (:data:`SEARCH_CALLS_RESERVED`), so the fee bound holds."""
    value = body.get("max_output_tokens")
    changes: dict[str, Any] = {}
    if value is None or not _within(value, max_output_tokens):
        changes["max_output_tokens"] = max_output_tokens
    if body.get("max_tool_calls") is None and billing_terms(body).tool_calls:
        changes["max_tool_calls"] = SEARCH_CALLS_RESERVED
    return _apply(body, changes, True)

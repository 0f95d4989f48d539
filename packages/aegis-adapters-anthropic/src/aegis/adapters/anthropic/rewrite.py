"""Make a Messages request carry the output limit the Gate reserved for.

The upstream enforces the worst case: the request reaches it with ``max_tokens`` at most the
permit's output limit. ``max_tokens`` is the only key changed, except when the lowered limit
no longer fits manual extended thinking: ``budget_tokens`` must stay below ``max_tokens``, so
it is lowered too (interleaved thinking, whose budget may exceed ``max_tokens``, gets the same
share of the limit it had of the worst case). A limit too small for the API's smallest
thinking budget is refused rather than sent to fail upstream.

:meth:`MessagesRewrite.to_bytes` replaces only the changed values in the client's bytes, so
everything else (messages, tools, images) reaches the upstream byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .errors import InvalidRequestBody
from .estimate import MIN_THINKING_BUDGET_TOKENS, MessagesEstimate

__all__ = ["MessagesRewrite", "rewrite_messages_request"]


@dataclass(frozen=True, slots=True)
class MessagesRewrite:
    """A Messages body as it must be sent upstream."""

    body: Mapping[str, Any]
    """The body to send: the caller's own object when nothing changed, else a shallow copy."""
    max_tokens: int
    """The output limit the body now carries."""
    changes: Mapping[str, Any] = field(default_factory=dict)
    """Top-level keys whose values were replaced, with their new values."""

    @property
    def changed(self) -> bool:
        """Some key was replaced."""
        return bool(self.changes)

    def to_bytes(self, original: bytes | None = None) -> bytes:
        """The body as JSON bytes. With the client's ``original`` bytes, only the values of the
        changed keys are replaced in them and every other byte is kept (the body is serialized
        anew only when ``original`` is not one JSON object whose changed keys each appear once).
        """
        if original is not None:
            if not self.changes:
                return original
            spliced = _splice(original, self.changes)
            if spliced is not None:
                return spliced
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


_WHITESPACE: Final = frozenset(" \t\n\r")
_decoder: Final = json.JSONDecoder()


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _top_level_spans(text: str) -> dict[str, list[tuple[int, int]]] | None:
    """Where each top-level key's value starts and ends in ``text``; ``None`` if ``text`` is
    not exactly one JSON object."""
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return None
    spans: dict[str, list[tuple[int, int]]] = {}
    at = _skip(text, at + 1)
    if text.startswith("}", at):
        return spans if _skip(text, at + 1) == len(text) else None
    try:
        while True:
            if not text.startswith('"', at):
                return None
            key, at = _decoder.raw_decode(text, at)
            at = _skip(text, at)
            if not text.startswith(":", at):
                return None
            start = _skip(text, at + 1)
            _, end = _decoder.raw_decode(text, start)
            spans.setdefault(key, []).append((start, end))
            at = _skip(text, end)
            if text.startswith(",", at):
                at = _skip(text, at + 1)
                continue
            if text.startswith("}", at) and _skip(text, at + 1) == len(text):
                return spans
            return None
    except ValueError:
        return None


def _splice(original: bytes, changes: Mapping[str, Any]) -> bytes | None:
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError:
        return None
    spans = _top_level_spans(text)
    if spans is None:
        return None
    edits = []
    for key, value in changes.items():
        where = spans.get(key)
        if where is None or len(where) != 1:
            return None  # absent or given twice: serialize the parsed body instead
        edits.append((*where[0], json.dumps(value, separators=(",", ":"), ensure_ascii=False)))
    out = text
    for start, end, value in sorted(edits, reverse=True):
        out = out[:start] + value + out[end:]
    return out.encode("utf-8")


def rewrite_messages_request(
    body: Mapping[str, Any], estimate: MessagesEstimate, *, max_output_tokens: int
) -> MessagesRewrite:
    """``body`` with its worst-case output (``estimate.output_tokens``) lowered to
    ``max_output_tokens`` (a permit's), or unchanged when it already fits."""
    if max_output_tokens >= estimate.output_tokens:
        return MessagesRewrite(body=body, max_tokens=estimate.max_tokens)
    limit = max(1, max_output_tokens)
    budget = estimate.thinking_budget_tokens
    out = dict(body)
    if budget is None or (budget < estimate.max_tokens and budget < limit):
        out["max_tokens"] = limit
        return MessagesRewrite(body=out, max_tokens=limit, changes={"max_tokens": limit})
    if budget >= estimate.max_tokens:
        new_budget = limit * budget // estimate.output_tokens
        new_max = limit - new_budget
    else:
        new_max, new_budget = limit, limit - 1
    if new_budget < MIN_THINKING_BUDGET_TOKENS or new_max < 1:
        raise InvalidRequestBody(
            f"the budget allows {max_output_tokens} output tokens, too few for extended "
            f"thinking (budget_tokens must be at least {MIN_THINKING_BUDGET_TOKENS})",
            param="thinking.budget_tokens",
        )
    thinking = {**body["thinking"], "budget_tokens": new_budget}
    out["max_tokens"] = new_max
    out["thinking"] = thinking
    return MessagesRewrite(
        body=out, max_tokens=new_max, changes={"max_tokens": new_max, "thinking": thinking}
    )

"""Make a Messages request carry the output limit the Gate reserved for.

The upstream enforces the worst case: the request reaches it with ``max_tokens`` at most the
permit's output limit. ``max_tokens`` is the only key changed, except when the lowered limit
no longer fits manual extended thinking: ``budget_tokens`` must stay below ``max_tokens``, so
it is lowered too (interleaved thinking, whose budget may exceed ``max_tokens``, gets the same
share of the limit it had of the worst case). A limit too small for the API's smallest
thinking budget is refused rather than sent to fail upstream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    changed: bool = False

    def to_bytes(self, original: bytes | None = None) -> bytes:
        """The body as JSON bytes (the client's ``original`` bytes when nothing changed)."""
        if original is not None and not self.changed:
            return original
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


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
        return MessagesRewrite(body=out, max_tokens=limit, changed=True)
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
    thinking = body["thinking"]
    out["max_tokens"] = new_max
    out["thinking"] = {**thinking, "budget_tokens": new_budget}
    return MessagesRewrite(body=out, max_tokens=new_max, changed=True)

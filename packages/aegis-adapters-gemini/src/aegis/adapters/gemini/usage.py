"""Usage read from Gemini's ``usageMetadata`` (REST camelCase), for responses and streams.

Mapping onto :class:`aegis.core.Usage`:

- input = ``promptTokenCount`` (which includes cached content) + ``toolUsePromptTokenCount``
  (search or code-execution results, billed as input);
- cached input = ``cachedContentTokenCount``;
- output = ``candidatesTokenCount`` + ``thoughtsTokenCount`` (thinking is billed as output);
- reasoning = ``thoughtsTokenCount``.

A stream repeats ``usageMetadata`` on its chunks as running totals: the last one seen is the
usage, chunks are never summed, and a chunk without it changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aegis.core import Usage, text_tokens_upper_bound

from ._fields import field
from .errors import WireError

__all__ = ["StreamUsage", "usage_from_metadata", "usage_from_response"]


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = field(meta, key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"usageMetadata.{key} is not a token count: {value!r}")
    return value


def usage_from_metadata(meta: Mapping[str, Any]) -> Usage:
    """The usage one ``usageMetadata`` object reports; missing counts are zero."""
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=min(_count(meta, "cachedContentTokenCount"), prompt),
        output_tokens=_count(meta, "candidatesTokenCount") + thoughts,
        reasoning_tokens=thoughts,
    )


def usage_from_response(response: Mapping[str, Any]) -> Usage | None:
    """The usage of a ``generateContent`` / embed response (or a stream chunk), if reported."""
    meta = field(response, "usageMetadata")
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise WireError("usageMetadata is not an object")
    return usage_from_metadata(meta)


def _delivered_tokens(chunk: Mapping[str, Any]) -> int:
    candidates = chunk.get("candidates")
    if not isinstance(candidates, Sequence):
        return 0
    total = 0
    for candidate in candidates:
        content = candidate.get("content") if isinstance(candidate, Mapping) else None
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if not isinstance(parts, Sequence):
            continue
        for part in parts:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += text_tokens_upper_bound(part["text"])
            else:
                total += text_tokens_upper_bound(json.dumps(part, ensure_ascii=False))
    return total


class StreamUsage:
    """Follows a ``streamGenerateContent`` stream chunk by chunk.

    :attr:`reported` is the last ``usageMetadata`` seen. :meth:`upper_bound` is what to charge
    when the stream ends early: the reported input (else the estimate's bound), and the larger
    of the reported output and a byte count of every part delivered so far.
    """

    __slots__ = ("chunks", "delivered_tokens", "reported")

    def __init__(self) -> None:
        self.reported: Usage | None = None
        self.delivered_tokens = 0
        """Upper bound of the output tokens in the parts received so far."""
        self.chunks = 0

    def observe(self, chunk: Mapping[str, Any]) -> None:
        """Account for one parsed stream chunk."""
        self.chunks += 1
        self.delivered_tokens += _delivered_tokens(chunk)
        usage = usage_from_response(chunk)
        if usage is not None:
            self.reported = usage

    def upper_bound(self, input_tokens_bound: int) -> Usage:
        """Best upper bound of what was used so far, for a stream that ended early."""
        reported = self.reported or Usage(input_tokens=input_tokens_bound)
        output = max(reported.output_tokens, self.delivered_tokens)
        return Usage(
            input_tokens=reported.input_tokens,
            cached_input_tokens=reported.cached_input_tokens,
            output_tokens=output,
            reasoning_tokens=reported.reasoning_tokens,
        )

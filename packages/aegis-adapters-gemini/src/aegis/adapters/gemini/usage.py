"""Usage read from Gemini's ``usageMetadata`` (REST camelCase), for responses and streams.

Mapping onto :class:`aegis.core.Usage`:

- input = ``promptTokenCount`` (which includes cached content) + ``toolUsePromptTokenCount``
  (search or code-execution results, billed as input);
- cached input = ``cachedContentTokenCount``;
- output = ``candidatesTokenCount`` + ``thoughtsTokenCount`` (thinking is billed as output);
- reasoning = ``thoughtsTokenCount``;
- audio input = the ``AUDIO`` entries of ``promptTokensDetails`` and
  ``toolUsePromptTokensDetails``, of which cached = the ``AUDIO`` entry of
  ``cacheTokensDetails``; audio output = the ``AUDIO`` entry of ``candidatesTokensDetails``;
- tool calls: a candidate with ``groundingMetadata`` is one grounded prompt (``grounding``,
  what Gemini 2.x bills per) and each of its ``webSearchQueries`` one search (``web_search``,
  what Gemini 3 bills per); each model's price lists the one it bills;
- the service tier is not in the body: the API answers it in the ``x-gemini-service-tier``
  header, which the caller passes in.

A stream repeats ``usageMetadata`` on its chunks as running totals: the last one seen is the
usage, chunks are never summed, and a chunk without it changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from aegis.core import ServiceTier, Usage, text_tokens_upper_bound

from ._fields import field
from .errors import WireError

__all__ = [
    "StreamUsage",
    "grounding_calls",
    "service_tier_from_header",
    "usage_from_metadata",
    "usage_from_response",
]


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = field(meta, key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"usageMetadata.{key} is not a token count: {value!r}")
    return value


def _modality(meta: Mapping[str, Any], key: str, modality: str) -> int:
    details = field(meta, key)
    if details is None:
        return 0
    if not isinstance(details, Sequence) or isinstance(details, str):
        raise WireError(f"usageMetadata.{key} is not a list")
    total = 0
    for entry in details:
        if isinstance(entry, Mapping) and entry.get("modality") == modality:
            total += _count(entry, "tokenCount")
    return total


_TIERS: Final[dict[str, ServiceTier]] = {
    "standard": "standard",
    "priority": "priority",
    "flex": "flex",
    "batch": "batch",
}


def service_tier_from_header(value: str | None) -> ServiceTier:
    """The billed tier of an ``x-gemini-service-tier`` answer header (absent: standard; a name
    this table does not know bills as priority, the dearest tier)."""
    if value is None or not value.strip():
        return "standard"
    return _TIERS.get(value.strip().lower(), "priority")


def grounding_calls(response: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """Billed grounding of a response (or stream chunk): grounded prompts and search queries."""
    candidates = field(response, "candidates")
    if not isinstance(candidates, Sequence) or isinstance(candidates, str):
        return ()
    grounded = 0
    queries: set[str] = set()
    for candidate in candidates:
        meta = field(candidate, "groundingMetadata") if isinstance(candidate, Mapping) else None
        if not isinstance(meta, Mapping):
            continue
        grounded = 1  # one prompt, however many candidates cite searches
        asked = field(meta, "webSearchQueries")
        if isinstance(asked, Sequence) and not isinstance(asked, str):
            queries.update(q for q in asked if isinstance(q, str))
    calls = [("grounding", grounded), ("web_search", len(queries))]
    return tuple((k, n) for k, n in calls if n)


def usage_from_metadata(
    meta: Mapping[str, Any],
    *,
    tool_calls: tuple[tuple[str, int], ...] = (),
    service_tier: ServiceTier = "standard",
) -> Usage:
    """The usage one ``usageMetadata`` object reports; missing counts are zero."""
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    thoughts = _count(meta, "thoughtsTokenCount")
    candidates = _count(meta, "candidatesTokenCount")
    cached = min(_count(meta, "cachedContentTokenCount"), prompt)
    audio = min(
        _modality(meta, "promptTokensDetails", "AUDIO")
        + _modality(meta, "toolUsePromptTokensDetails", "AUDIO"),
        prompt,
    )
    cached_audio = min(_modality(meta, "cacheTokensDetails", "AUDIO"), cached, audio)
    # Uncached audio cannot be more than the uncached input.
    audio = min(audio, prompt - cached + cached_audio)
    return Usage(
        input_tokens=prompt,
        cached_input_tokens=cached,
        output_tokens=candidates + thoughts,
        reasoning_tokens=thoughts,
        audio_input_tokens=audio,
        cached_audio_input_tokens=cached_audio,
        audio_output_tokens=min(_modality(meta, "candidatesTokensDetails", "AUDIO"), candidates),
        tool_calls=tool_calls,
        service_tier=service_tier,
    )


def usage_from_response(
    response: Mapping[str, Any], service_tier: ServiceTier = "standard"
) -> Usage | None:
    """The usage of a ``generateContent`` / embed response (or a stream chunk), if reported."""
    meta = field(response, "usageMetadata")
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise WireError("usageMetadata is not an object")
    return usage_from_metadata(
        meta, tool_calls=grounding_calls(response), service_tier=service_tier
    )


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

    __slots__ = ("chunks", "delivered_tokens", "reported", "service_tier", "tool_calls")

    def __init__(self, service_tier: ServiceTier = "standard") -> None:
        self.service_tier = service_tier
        """The tier the answer's header named (a stream's header comes before its chunks)."""
        self.tool_calls: dict[str, int] = {}
        """Grounding seen on any chunk: it may come on a chunk without usage."""
        self.reported: Usage | None = None
        self.delivered_tokens = 0
        """Upper bound of the output tokens in the parts received so far."""
        self.chunks = 0

    def observe(self, chunk: Mapping[str, Any]) -> None:
        """Account for one parsed stream chunk."""
        self.chunks += 1
        self.delivered_tokens += _delivered_tokens(chunk)
        for kind, n in grounding_calls(chunk):
            self.tool_calls[kind] = max(self.tool_calls.get(kind, 0), n)
        meta = field(chunk, "usageMetadata")
        if meta is not None:
            if not isinstance(meta, Mapping):
                raise WireError("usageMetadata is not an object")
            self.reported = usage_from_metadata(meta)

    def usage(self) -> Usage | None:
        """The usage the stream reported, with the grounding and tier seen along it."""
        if self.reported is None:
            return None
        return replace(
            self.reported, tool_calls=tuple(self.tool_calls.items()), service_tier=self.service_tier
        )

    def upper_bound(self, input_tokens_bound: int) -> Usage:
        """Best upper bound of what was used so far, for a stream that ended early."""
        reported = self.usage() or Usage(
            input_tokens=input_tokens_bound,
            tool_calls=tuple(self.tool_calls.items()),
            service_tier=self.service_tier,
        )
        return replace(reported, output_tokens=max(reported.output_tokens, self.delivered_tokens))

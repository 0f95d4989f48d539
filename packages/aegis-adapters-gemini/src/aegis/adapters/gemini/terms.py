"""What a Gemini request says about how it will be billed beyond its token bounds.

The Gate prices a call's worst case under these terms (:class:`aegis.core.BillingTerms`): the
tier asked for (``serviceTier``), grounding with Google Search (one grounded prompt, and up to
:data:`SEARCH_QUERIES_RESERVED` search queries), and whether input may be audio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from aegis.core import BillingTerms, ServiceTier

from ._fields import field

__all__ = ["SEARCH_QUERIES_RESERVED", "billing_terms"]

SEARCH_QUERIES_RESERVED: Final = 8
"""Search queries reserved for a grounded request (Gemini 3 bills each); queries beyond it are
charged as the answer reports them (the receipt shows the overage)."""

_SEARCH_TOOLS: Final = ("googleSearch", "googleSearchRetrieval")
_TIERS: Final[dict[str, ServiceTier]] = {
    "unspecified": "standard",
    "service_tier_unspecified": "standard",
    "standard": "standard",
    "priority": "priority",
    "flex": "flex",
    "batch": "batch",
}


def _media_types(body: Mapping[str, Any]) -> list[str]:
    types: list[str] = []
    contents = body.get("contents")
    if not isinstance(contents, Sequence) or isinstance(contents, str):
        return types
    for content in contents:
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if not isinstance(parts, Sequence) or isinstance(parts, str):
            continue
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            for name in ("inlineData", "fileData"):
                media = field(part, name)
                mime = field(media, "mimeType") if isinstance(media, Mapping) else None
                if isinstance(mime, str):
                    types.append(mime)
    return types


def billing_terms(body: Mapping[str, Any]) -> BillingTerms:
    """The billing terms of a ``generateContent`` request body."""
    tier = field(body, "serviceTier")
    service_tier: ServiceTier = "standard"
    if tier is not None:
        # A tier this table does not know bills as priority, the dearest there is.
        service_tier = _TIERS.get(str(tier).lower(), "priority")
    tools = body.get("tools")
    grounded = isinstance(tools, Sequence) and any(
        isinstance(tool, Mapping) and any(field(tool, name) is not None for name in _SEARCH_TOOLS)
        for tool in tools
    )
    calls = (("grounding", 1), ("web_search", SEARCH_QUERIES_RESERVED)) if grounded else ()
    # Video can carry an audio track, which Gemini bills at the audio price.
    audio = any(m.startswith(("audio/", "video/")) for m in _media_types(body))
    return BillingTerms(service_tier=service_tier, tool_calls=calls, audio_input=audio)

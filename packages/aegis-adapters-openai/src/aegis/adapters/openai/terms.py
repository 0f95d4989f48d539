"""What an OpenAI request says about how it will be billed beyond its token bounds.

The Gate prices a call's worst case under these terms (:class:`aegis.core.BillingTerms`): the
tier asked for (``service_tier``), the built-in search tools the model may call (each call
billed per thousand), and whether input or output may be audio (billed at audio prices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from aegis.adapters.openai.usage import service_tier_from_wire
from aegis.core import BillingTerms

__all__ = ["SEARCH_CALLS_RESERVED", "billing_terms"]

SEARCH_CALLS_RESERVED: Final = 8
"""Search calls reserved per search tool when the request sets no ``max_tool_calls``; calls
beyond it are charged as the answer reports them (the receipt shows the overage)."""

_WEB_SEARCH: Final = frozenset(
    {"web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26"}
)


def _parts(body: Mapping[str, Any]) -> list[Any]:
    parts: list[Any] = []
    for key in ("messages", "input"):
        items = body.get(key)
        if not isinstance(items, Sequence) or isinstance(items, str):
            continue
        for item in items:
            content = item.get("content") if isinstance(item, Mapping) else None
            if isinstance(content, Sequence) and not isinstance(content, str):
                parts.extend(content)
            else:
                parts.append(item)
    return parts


def billing_terms(body: Mapping[str, Any]) -> BillingTerms:
    """The billing terms of a chat completions or Responses request body."""
    tools = body.get("tools")
    kinds = set()
    if isinstance(tools, Sequence) and not isinstance(tools, str):
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if kind in _WEB_SEARCH:
                kinds.add("web_search")
            elif kind == "file_search":
                kinds.add("file_search")
    limit = body.get("max_tool_calls")
    calls = (
        limit
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
        else SEARCH_CALLS_RESERVED
    )
    modalities = body.get("modalities")
    audio_out = isinstance(modalities, Sequence) and "audio" in modalities
    audio_in = any(
        isinstance(part, Mapping) and part.get("type") == "input_audio" for part in _parts(body)
    )
    return BillingTerms(
        service_tier=service_tier_from_wire(body.get("service_tier")),
        tool_calls=tuple((kind, calls) for kind in sorted(kinds)),
        audio_input=audio_in,
        audio_output=audio_out,
    )

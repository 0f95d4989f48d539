"""What a Messages request says about how it will be billed beyond its token bounds.

The Gate prices a call's worst case under these terms (:class:`aegis.core.BillingTerms`). For
Claude that is the web search tool (``web_search_*``), billed per search: the request's
``max_uses`` searches are reserved, or :data:`WEB_SEARCHES_RESERVED` when it sets none (more
are charged as the answer reports them, the receipt showing the overage). Cache writes are
not a term here: :meth:`MessagesEstimate.reserved_input_tokens` already reserves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from aegis.core import BillingTerms

__all__ = ["WEB_SEARCHES_RESERVED", "billing_terms"]

WEB_SEARCHES_RESERVED: Final = 8
"""Searches reserved for a web search tool that sets no ``max_uses``."""


def billing_terms(body: Mapping[str, Any]) -> BillingTerms:
    """The billing terms of a Messages (or ``count_tokens``) request body."""
    tools = body.get("tools")
    searches = 0
    if isinstance(tools, Sequence) and not isinstance(tools, str):
        for tool in tools:
            kind = tool.get("type") if isinstance(tool, Mapping) else None
            if isinstance(kind, str) and kind.startswith("web_search_"):
                uses = tool.get("max_uses")
                bounded = isinstance(uses, int) and not isinstance(uses, bool) and uses > 0
                searches += uses if bounded else WEB_SEARCHES_RESERVED
    return BillingTerms(tool_calls=(("web_search", searches),) if searches else ())

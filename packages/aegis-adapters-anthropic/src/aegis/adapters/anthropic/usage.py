"""Usage read from Anthropic's ``usage`` object, onto :class:`aegis.core.Usage`.

Anthropic reports ``input_tokens`` *excluding* the prompt tokens read from or written to the
prompt cache, which it reports beside them: ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` (split by lifetime in ``cache_creation``:
``ephemeral_5m_input_tokens``, ``ephemeral_1h_input_tokens``). Aegis counts cached and
cache-write tokens *inside* ``input_tokens``, so:

- input = ``input_tokens`` + ``cache_read_input_tokens`` + ``cache_creation_input_tokens``;
- cached input = ``cache_read_input_tokens``;
- 5-minute cache writes = ``ephemeral_5m_input_tokens``; 1-hour cache writes =
  ``ephemeral_1h_input_tokens`` plus any write the split does not attribute (billed at the
  dearer 1-hour rate: the safe side);
- output = ``output_tokens`` (thinking included); reasoning = ``output_tokens_details.
  thinking_tokens``;
- web searches (``server_tool_use.web_search_requests``) as ``web_search`` tool calls (web
  fetches are billed only as the tokens they add); ``service_tier`` as the tier served.

Each reader takes parsed JSON or the SDK's objects. A count that is not a non-negative integer
is a :class:`WireError`, never read as zero. A stream reports usage in ``message_start`` (input
and cache counts, a first output count) and cumulatively in ``message_delta``: the last value of
each field wins, they are never summed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from aegis.core import ServiceTier, Usage, wire_field

from .errors import WireError

__all__ = ["AnthropicUsage", "usage_from_message", "usage_from_wire"]

_FIELDS: Final = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)


_TIERS: Final[dict[str, ServiceTier]] = {
    "standard": "standard",
    "priority": "priority",
    "batch": "batch",
}
# An unknown tier is billed as priority, core's dearest default (never below what it may cost).


def _count(obj: Any, key: str, where: str) -> int | None:
    value = wire_field(obj, key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{where}.{key} is not a token count: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class AnthropicUsage:
    """The counts of one Anthropic ``usage`` object, as reported (``input_tokens`` without
    the cache)."""

    input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    """``cache_creation.ephemeral_5m_input_tokens``, as reported."""
    cache_write_1h_tokens: int = 0
    """``cache_creation.ephemeral_1h_input_tokens``, as reported (see :attr:`cache_writes`)."""
    output_tokens: int = 0
    thinking_tokens: int = 0
    """``output_tokens_details.thinking_tokens`` (part of ``output_tokens``)."""
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    service_tier: str | None = None
    """``standard``, ``priority`` or ``batch``."""

    @property
    def cache_writes(self) -> tuple[int, int]:
        """(5-minute, 1-hour) cache writes, every written token attributed: writes the split
        leaves out count as 1-hour writes (the dearer rate). Counts merged from several stream
        events that disagree keep the larger total."""
        five, hour = self.cache_write_5m_tokens, self.cache_write_1h_tokens
        return five, hour + max(0, self.cache_creation_input_tokens - five - hour)

    @property
    def prompt_tokens(self) -> int:
        """Every prompt token the call billed: uncached, cache reads and cache writes."""
        return self.input_tokens + self.cache_read_input_tokens + sum(self.cache_writes)

    def merged(self, later: AnthropicUsage, fields: frozenset[str]) -> AnthropicUsage:
        """These counts with ``fields`` taken from ``later`` (a stream's cumulative update)."""
        return replace(self, **{name: getattr(later, name) for name in fields})

    def to_usage(self) -> Usage:
        """The counts in Aegis's shape (cache reads and writes inside ``input_tokens``)."""
        five, hour = self.cache_writes
        return Usage(
            input_tokens=self.prompt_tokens,
            cached_input_tokens=self.cache_read_input_tokens,
            cache_write_tokens=five,
            cache_write_1h_tokens=hour,
            output_tokens=self.output_tokens,
            reasoning_tokens=min(self.thinking_tokens, self.output_tokens),
            tool_calls=(("web_search", self.web_search_requests),),
            service_tier=_TIERS.get(self.service_tier or "standard", "priority"),
        )


def read_usage(usage: Any, where: str = "usage") -> tuple[AnthropicUsage, frozenset[str]]:
    """The counts of a ``usage`` object and the names of the fields it carried."""
    present: set[str] = set()
    counts: dict[str, Any] = {}
    for key in _FIELDS:
        value = _count(usage, key, where)
        if value is not None:
            counts[key] = value
            present.add(key)
    creation = wire_field(usage, "cache_creation")
    if creation is not None:
        for key, name in (
            ("ephemeral_5m_input_tokens", "cache_write_5m_tokens"),
            ("ephemeral_1h_input_tokens", "cache_write_1h_tokens"),
        ):
            value = _count(creation, key, f"{where}.cache_creation")
            if value is not None:
                counts[name] = value
                present.add(name)
    details = wire_field(usage, "output_tokens_details")
    if details is not None:
        value = _count(details, "thinking_tokens", f"{where}.output_tokens_details")
        if value is not None:
            counts["thinking_tokens"] = value
            present.add("thinking_tokens")
    tier = wire_field(usage, "service_tier")
    if tier is not None:
        if not isinstance(tier, str):
            raise WireError(f"{where}.service_tier is not a string: {tier!r}")
        counts["service_tier"] = tier
        present.add("service_tier")
    tools = wire_field(usage, "server_tool_use")
    if tools is not None:
        for key in ("web_search_requests", "web_fetch_requests"):
            value = _count(tools, key, f"{where}.server_tool_use")
            if value is not None:
                counts[key] = value
                present.add(key)
    written = counts.get("cache_creation_input_tokens", 0)
    split = counts.get("cache_write_5m_tokens", 0) + counts.get("cache_write_1h_tokens", 0)
    if split > written:
        raise WireError(f"{where}.cache_creation adds up to more than cache_creation_input_tokens")
    return AnthropicUsage(**counts), frozenset(present)


def usage_from_wire(usage: Any) -> AnthropicUsage:
    """The counts of one ``usage`` object (parsed JSON or the SDK's ``Usage``)."""
    if usage is None:
        raise WireError("usage is missing")
    return read_usage(usage)[0]


def usage_from_message(message: Any) -> Usage | None:
    """The usage of a Messages response (parsed JSON or the SDK's ``Message``), in Aegis's
    shape; ``None`` when it carries none."""
    usage = wire_field(message, "usage")
    if usage is None:
        return None
    return usage_from_wire(usage).to_usage()

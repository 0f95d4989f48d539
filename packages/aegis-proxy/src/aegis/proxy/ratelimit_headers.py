"""``x-ratelimit-*`` headers from the rate limits a call was admitted under.

The handler records the permit's limits on the request; a response-prepare hook writes the
headers just before any response starts (a stream's too), so every answer to an admitted call
carries them. A refusal by a rate limit carries its own (see ``error_for``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from aiohttp import web

from aegis.core import RateLimitStatus
from aegis.proxy.state import GATE

__all__ = ["RATE_LIMITS", "add_rate_limit_headers", "rate_limit_headers"]

RATE_LIMITS = web.RequestKey("rate_limits", tuple[RateLimitStatus, ...])


def rate_limit_headers(statuses: Sequence[RateLimitStatus], now: float) -> dict[str, str]:
    """The conventional headers, one set per kind (``requests``, ``tokens``)."""
    headers = {}
    for status in statuses:
        reset = max(0, math.ceil(status.resets_at - now))
        headers[f"x-ratelimit-limit-{status.kind}"] = str(status.limit)
        headers[f"x-ratelimit-remaining-{status.kind}"] = str(status.remaining)
        headers[f"x-ratelimit-reset-{status.kind}"] = f"{reset}s"
    return headers


async def add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook."""
    statuses = request.get(RATE_LIMITS)
    if statuses:
        now = request.config_dict[GATE].clock.time()
        # The tenant's limits replace the provider's (those are the proxy's own account's).
        response.headers.update(rate_limit_headers(statuses, now))

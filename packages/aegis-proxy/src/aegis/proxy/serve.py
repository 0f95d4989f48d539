"""The one attempt loop: try the planned providers in order, each attempt reserved, owned and
settled on its own, until one answers or none is left.

The loop never catches a failure from three frames down: it asks each attempt's owner how it
ended (:attr:`UpstreamAttempt.failure`). A provider's client error (4xx) ends the loop with
that answer; a retryable failure goes on to the next provider; when every provider failed,
the last one's own answer is given (its ``retry-after`` included), else a 502/504 worded by
the proxy in the client's API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from aegis.core import STANDARD_TERMS, BillingTerms, Gate, Permit, Policy, Receipt
from aegis.proxy.attempt import Failure, UpstreamAttempt
from aegis.proxy.calls import IncomingCall
from aegis.proxy.errors import UpstreamUnavailable
from aegis.proxy.exchange import Exchange
from aegis.proxy.forward import Streamed, forward, passthrough_headers, success_headers
from aegis.proxy.ratelimit_headers import RATE_LIMITS
from aegis.proxy.routing import Attempt
from aegis.proxy.upstream import Upstream

__all__ = ["CallScope", "Prepare", "serve"]


@dataclass(frozen=True, slots=True)
class CallScope:
    """One client call as governance sees it across its attempts: who, under which policy."""

    gate: Gate
    call: IncomingCall
    policy: Policy
    """Read once: routing and every attempt's admission use this one, even across a reload."""
    capability: str
    body_sha256: str

    @classmethod
    async def open(cls, gate: Gate, call: IncomingCall, model: str, capability: str) -> CallScope:
        """The caller's policy (an unknown tenant is denied here, with its receipt)."""
        body_sha256 = hashlib.sha256(call.raw).hexdigest()
        policy = await gate.policy_for(
            tenant_id=call.tenant_id,
            request_id=call.request_id,
            run_id=call.run_id,
            model=model,
            capability=capability,
            body_sha256=body_sha256,
        )
        return cls(gate, call, policy, capability, body_sha256)

    async def admit(
        self,
        attempt: Attempt,
        request_id: str,
        *,
        input_tokens: int,
        max_output_tokens: int | None,
        capability: str | None = None,
        terms: BillingTerms = STANDARD_TERMS,
        input_is_bounded: bool = True,
    ) -> Permit:
        """Reserve one attempt (the first keeps the client's request id), its worst case
        priced under the request's billing ``terms``; ``input_is_bounded=False`` adds the
        policy's allowance for input the request does not show."""
        return await self.gate.admit(
            tenant_id=self.call.tenant_id,
            request_id=request_id,
            run_id=self.call.run_id,
            provider=attempt.provider,
            model=attempt.model,
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            capability=capability or self.capability,
            body_sha256=self.body_sha256,
            policy=self.policy,
            key=self.call.key,
            terms=terms,
            input_is_bounded=input_is_bounded,
        )


Prepare = Callable[[Attempt, str], Awaitable[tuple[Permit, Exchange]]]
"""Admits one attempt (with its own request id) and builds its wire."""


async def serve(
    request: web.Request,
    scope: CallScope,
    upstreams: Mapping[str, Upstream],
    plan: list[Attempt],
    prepare: Prepare,
) -> web.StreamResponse:
    """Serve the call with the first provider of ``plan`` that answers."""
    call, gate = scope.call, scope.gate
    last: Failure | None = None
    receipt: Receipt | None = None
    for number, attempt in enumerate(plan):
        # Each attempt is reserved and receipted on its own; the first keeps the client's id.
        request_id = call.request_id if number == 0 else f"{call.request_id}~{number}"
        permit, exchange = await prepare(attempt, request_id)
        request[RATE_LIMITS] = permit.rate_limits
        async with UpstreamAttempt(gate, permit) as owner:
            result = await forward(request, call, upstreams[attempt.provider], exchange, owner)
        if isinstance(result, Streamed):
            return await result.finish()
        receipt = owner.receipt
        assert receipt is not None
        if result is not None:
            answer, upstream_headers = result
            headers = (
                passthrough_headers(upstream_headers)
                if answer.passthrough
                else {"Content-Type": "application/json"}
            )
            headers.update(success_headers(call, receipt.receipt_id, receipt.actual_usd))
            status = owner.upstream_status or 200
            return web.Response(status=status, body=answer.body, headers=headers)
        last = owner.failure
        assert last is not None
        if not last.retryable:
            break
    assert last is not None
    assert receipt is not None
    if last.body:
        # The provider's own answer, with its headers (retry-after for a 429 included).
        headers = {**last.headers, "x-request-id": call.request_id}
        headers["x-aegis-receipt-id"] = receipt.receipt_id
        return web.Response(status=last.status, body=last.body, headers=headers)
    raise UpstreamUnavailable(
        f"every provider failed; last: {last.reason}",
        status=last.status,
        receipt_id=receipt.receipt_id,
    )

"""Governed Claude calls through the official ``anthropic`` SDK (``AsyncAnthropic``).

Each function takes the request body as the JSON that goes over the wire (a dict), bounds it
with :mod:`.estimate`, admits it at the Gate (one admission per logical call: the SDK's own
retries on 408/409/429/5xx/529 happen inside it and are never charged twice), sends it with the
permit's output limit (:mod:`.rewrite`), and settles from the usage Anthropic reports
(:mod:`.usage`). Keys the SDK has no parameter for go through ``extra_body``.

SDK errors (``APIStatusError`` and its subclasses, ``APIConnectionError``, ``APITimeoutError``)
release the reservation, leave a receipt with the upstream status and error type (never the
message, which may echo a key), and propagate unchanged. Governance refusals raise
:mod:`aegis.core`'s :class:`~aegis.core.Denied` errors before any request is sent. A response
whose usage cannot be read is charged its whole reservation.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anthropic
from aegis.core import (
    Gate,
    GovernedCall,
    GovernedResponse,
    GovernedStream,
    Permit,
    StreamState,
    Usage,
    sdk_kwargs,
)
from anthropic.types import Message, MessageTokensCount, RawMessageStreamEvent

from .errors import WireError
from .estimate import MessagesEstimate, estimate_count_tokens_request, estimate_messages_request
from .rewrite import rewrite_messages_request
from .stream import StreamMeter
from .usage import usage_from_message

__all__ = [
    "PROVIDER",
    "GovernedMessageStream",
    "GovernedResponse",
    "count_tokens_via_gate",
    "messages_stream_via_gate",
    "messages_via_gate",
]

logger = logging.getLogger(__name__)

PROVIDER: Final = "anthropic"


def describe_error(exc: BaseException) -> str:
    """A receipt's error text: the exception class and Anthropic's error type, no message."""
    kind = getattr(exc, "type", None) if isinstance(exc, anthropic.APIStatusError) else None
    return f"{type(exc).__name__}: {kind}" if isinstance(kind, str) else type(exc).__name__


@asynccontextmanager
async def _upstream(call: GovernedCall) -> AsyncIterator[None]:
    """Record the upstream outcome of the block on ``call``."""
    try:
        yield
    except anthropic.APIStatusError as exc:
        call.upstream_status = exc.status_code
        call.error = describe_error(exc)
        logger.info(
            "anthropic call %s failed upstream: %s", call.permit.request_id, exc.status_code
        )
        raise
    except anthropic.APIError as exc:
        call.error = describe_error(exc)
        raise


def _admission(gate: Gate, estimate: MessagesEstimate) -> tuple[int, int]:
    return estimate.reserved_input_tokens(gate.pricing.get(estimate.model)), estimate.output_tokens


def _limited(
    body: Mapping[str, Any], estimate: MessagesEstimate, permit: Permit
) -> Mapping[str, Any]:
    return rewrite_messages_request(body, estimate, max_output_tokens=permit.max_output_tokens).body


async def messages_via_gate(
    *,
    gate: Gate,
    client: anthropic.AsyncAnthropic,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    run_id: str | None = None,
) -> GovernedResponse[Message]:
    """A governed ``messages.create`` (capability ``llm:invoke``); ``body["stream"]`` must
    not be set (use :func:`messages_stream_via_gate`).

    ``request_id`` is the idempotency key of the reservation (a reused id is refused).
    Raises :class:`~.InvalidRequestBody` for a body whose cost cannot be bounded (no
    ``max_tokens``, say) before anything is reserved.
    """
    estimate = estimate_messages_request(body)
    if estimate.stream:
        raise ValueError("body sets stream: use messages_stream_via_gate")
    input_tokens, output_tokens = _admission(gate, estimate)
    async with gate.call(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=estimate.model,
        input_tokens=input_tokens,
        max_output_tokens=output_tokens,
        run_id=run_id,
        capability="llm:invoke",
    ) as call:
        sent = _limited(body, estimate, call.permit)
        create = client.messages.create
        async with _upstream(call):
            message: Message = await create(**sdk_kwargs(create, sent))
        call.upstream_status = 200
        try:
            usage = usage_from_message(message)
        except WireError as exc:
            usage = None
            call.error = f"unreadable usage, charged the reservation: {exc}"
        if usage is not None:
            call.record(usage)
    assert call.receipt is not None  # set by Gate.call on exit
    return GovernedResponse(message, call.receipt)


async def count_tokens_via_gate(
    *,
    gate: Gate,
    client: anthropic.AsyncAnthropic,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    run_id: str | None = None,
) -> GovernedResponse[MessageTokensCount]:
    """A governed ``messages.count_tokens``: checked against the policy (model allowed, rate
    limits) and receipted, but free, as Anthropic does not bill it: nothing is reserved or
    charged."""
    estimate = estimate_count_tokens_request(body)
    async with gate.call(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=estimate.model,
        input_tokens=0,
        max_output_tokens=0,
        run_id=run_id,
        capability="llm:invoke",
    ) as call:
        count = client.messages.count_tokens
        async with _upstream(call):
            result: MessageTokensCount = await count(**sdk_kwargs(count, body))
        call.upstream_status = 200
        call.record(Usage())
    assert call.receipt is not None
    return GovernedResponse(result, call.receipt)


class _StreamState(StreamState):
    __slots__ = ("meter",)

    def __init__(self) -> None:
        super().__init__()
        self.meter: StreamMeter | None = None


class GovernedMessageStream(GovernedStream[RawMessageStreamEvent, _StreamState]):
    """The raw events of a governed Messages stream, as they arrive; settles once, however it
    ends: finished (the reported usage), failed upstream (what was counted, the SDK's error
    propagates), overrun (ended at the last event within the limit), or stopped by the
    consumer (``break``, :meth:`aclose`, leaving ``async with``, cancellation).

    Use it in ``async with`` (or call :meth:`aclose`) when you may stop early, so the
    reservation settles at once; an abandoned stream settles when it is collected.
    """

    __slots__ = ()

    @property
    def meter(self) -> StreamMeter | None:
        """What the stream reported and showed so far (``None`` before it was read)."""
        return self._state.meter


async def _renew(gate: Gate, permit: Permit) -> None:
    # A stream may outlive the reservation's TTL; the hold must not expire under it.
    try:
        await gate.ledger.renew(
            tenant_id=permit.tenant_id,
            hold_id=permit.request_id,
            ttl_s=permit.policy.reservation_ttl_s,
        )
    except Exception as exc:
        # A late commit still posts (flagged), so a failed renewal must not kill the stream.
        logger.warning("reservation renewal failed: %s", type(exc).__name__)


async def _stream(
    state: _StreamState,
    *,
    gate: Gate,
    client: anthropic.AsyncAnthropic,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    estimate: MessagesEstimate,
    run_id: str | None,
) -> AsyncGenerator[RawMessageStreamEvent | None, None]:
    input_tokens, output_tokens = _admission(gate, estimate)
    async with gate.call(
        tenant_id=tenant_id,
        request_id=request_id,
        provider=PROVIDER,
        model=estimate.model,
        input_tokens=input_tokens,
        max_output_tokens=output_tokens,
        run_id=run_id,
        capability="llm:stream",
    ) as call:
        state.call = call
        yield None  # admitted; nothing has been sent yet
        permit = call.permit
        sent = {**_limited(body, estimate, permit), "stream": True}
        meter = state.meter = StreamMeter(max_output_tokens=permit.max_output_tokens)
        create = client.messages.create
        clock = gate.clock
        every_s = permit.policy.reservation_ttl_s / 3
        renew_at = clock.monotonic() + every_s
        async with _upstream(call):
            upstream: anthropic.AsyncStream[RawMessageStreamEvent] = await create(
                **sdk_kwargs(create, sent)
            )
            call.upstream_status = upstream.response.status_code
            try:
                async for event in upstream:
                    if not meter.observe(event):
                        call.error = (
                            "upstream exceeded max_tokens; stream ended by aegis at the "
                            f"reserved output ({permit.max_output_tokens} tokens)"
                        )
                        break
                    call.record(meter.counted_usage(permit.input_tokens), source="counted")
                    yield event
                    if clock.monotonic() > renew_at:
                        await _renew(gate, permit)
                        renew_at = clock.monotonic() + every_s
            finally:
                await upstream.close()
        reported = meter.usage()
        if reported is not None and not meter.exceeded:
            call.record(reported, source="reported")
        else:
            call.record(meter.counted_usage(permit.input_tokens), source="counted")
            if not meter.exceeded:
                call.status = "upstream_error"
                call.error = "stream ended before its final usage"


async def messages_stream_via_gate(
    *,
    gate: Gate,
    client: anthropic.AsyncAnthropic,
    tenant_id: str,
    request_id: str,
    body: Mapping[str, Any],
    run_id: str | None = None,
) -> GovernedMessageStream:
    """A governed streamed ``messages.create`` (capability ``llm:stream``): the SDK's raw
    stream events (``message_start`` ... ``message_stop``) as they arrive.

    Admission happens here, so a refusal raises before any request is sent; the request goes
    out when the stream is first read. Long streams renew their reservation as they go.
    """
    estimate = estimate_messages_request(body)
    state = _StreamState()
    agen = _stream(
        state,
        gate=gate,
        client=client,
        tenant_id=tenant_id,
        request_id=request_id,
        body=body,
        estimate=estimate,
        run_id=run_id,
    )
    await agen.__anext__()
    return GovernedMessageStream(agen, state)

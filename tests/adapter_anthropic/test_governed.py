"""Governed Claude calls through the real anthropic SDK against the local fake Messages API.

Every expected charge is costed here by hand, with Decimal, from Anthropic's published prices
(claude-haiku-4-5: $1 input, $1.25 5-minute cache writes, $2 1-hour cache writes, $0.10 cache
reads, $5 output per million tokens; $10 per 1,000 web searches), never with Aegis's code.
"""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal
from typing import Any

import anthropic
import pytest
from adapter_anthropic._support import API_KEY, TENANT, Governance, MakeGovernance
from anthropic import AsyncAnthropic
from fakes.anthropic_upstream import FakeAnthropic, FakeAnthropicServer, Fault, Reply

from aegis.adapters.anthropic import (
    InvalidRequestBody,
    count_tokens_via_gate,
    messages_stream_via_gate,
    messages_via_gate,
)
from aegis.core import BudgetExceeded, UnknownModelDenied, canonical_bytes, parse_usd

MODEL = "claude-haiku-4-5"
HAIKU = {"in": Decimal(1), "w5": Decimal("1.25"), "w1": Decimal(2), "read": Decimal("0.10")}
HAIKU_OUT = Decimal(5)
MTOK = Decimal(1_000_000)


def usd(**tokens: int) -> Decimal:
    """The USD cost of claude-haiku-4-5 tokens by kind (in, w5, w1, read, out, searches)."""
    total = Decimal(0)
    for kind, count in tokens.items():
        if kind == "out":
            total += count * HAIKU_OUT / MTOK
        elif kind == "searches":
            total += count * Decimal(10) / 1000
        else:
            total += count * HAIKU[kind] / MTOK
    return total


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        **extra,
    }


def assert_no_secret(gov: Governance) -> None:
    for receipt in gov.receipts:
        assert API_KEY.encode() not in canonical_bytes(receipt.to_dict())


async def test_a_message_is_charged_its_cache_reads_writes_and_searches_exactly(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(
        Reply(
            input_tokens=1_000,
            cache_write_5m_tokens=2_000,
            cache_write_1h_tokens=3_000,
            cache_read_tokens=4_000,
            output_tokens=500,
            web_search_requests=3,
        )
    )
    result = await messages_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=body()
    )
    assert result.response.content[0].type == "text"
    receipt = result.receipt
    assert receipt.status == "ok"
    assert receipt.usage_source == "reported"
    expected = usd(**{"in": 1_000, "w5": 2_000, "w1": 3_000, "read": 4_000, "out": 500})
    expected += usd(searches=3)
    assert Decimal(receipt.actual_usd) == expected == Decimal("0.0424")
    assert receipt.usage is not None
    assert receipt.usage.input_tokens == 10_000  # Aegis counts the cache inside the input
    assert await gov.month() == (parse_usd(expected), 0)
    assert fake.last_body["max_tokens"] == 64
    assert_no_secret(gov)


async def test_the_sdk_retries_happen_inside_one_admission(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Fault.rate_limited(), Fault.overloaded(), Reply(input_tokens=10, output_tokens=2))
    result = await messages_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=body()
    )
    assert len(fake.requests) == 3
    assert len(gov.receipts) == 1
    assert Decimal(result.receipt.actual_usd) == usd(**{"in": 10, "out": 2})


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.of("invalid_request_error"), anthropic.BadRequestError),
        (Fault.of("permission_error"), anthropic.PermissionDeniedError),
        (Fault.of("not_found_error"), anthropic.NotFoundError),
        (Fault.of("request_too_large"), anthropic.APIStatusError),
        (Fault.rate_limited(), anthropic.RateLimitError),
        (Fault.of("api_error"), anthropic.InternalServerError),
        (Fault.overloaded(), anthropic.InternalServerError),
    ],
)
async def test_sdk_errors_release_leave_a_receipt_and_propagate_unchanged(
    gov: Governance,
    server: FakeAnthropicServer,
    fault: Fault,
    error: type[anthropic.APIStatusError],
) -> None:
    server.fake.enqueue(fault)
    async with AsyncAnthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as client:
        with pytest.raises(error) as caught:
            await messages_via_gate(
                gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=body()
            )
    assert caught.value.status_code == fault.status
    assert str(caught.value.request_id).startswith("req_")
    receipt = gov.last
    assert (receipt.status, receipt.upstream_status) == ("upstream_error", fault.status)
    assert receipt.error == f"{type(caught.value).__name__}: {fault.type}"
    assert receipt.actual_usd == "0"
    assert await gov.month() == (0, 0)
    assert_no_secret(gov)


async def test_a_wrong_key_is_the_sdks_authentication_error_and_never_in_the_receipt(
    gov: Governance, server: FakeAnthropicServer
) -> None:
    async with AsyncAnthropic(base_url=server.url, api_key="sk-ant-wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            await messages_via_gate(
                gate=gov.gate, client=bad, tenant_id=TENANT, request_id="r1", body=body()
            )
    assert gov.last.upstream_status == 401
    assert b"sk-ant-wrong" not in canonical_bytes(gov.last.to_dict())


async def test_a_body_without_max_tokens_is_refused_before_anything_is_sent(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    unbounded = body()
    del unbounded["max_tokens"]
    with pytest.raises(InvalidRequestBody) as caught:
        await messages_via_gate(
            gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=unbounded
        )
    assert caught.value.param == "max_tokens"
    assert fake.requests == []
    assert await gov.month() == (0, 0)


async def test_an_unpriced_model_is_denied_with_a_receipt_and_never_sent(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    with pytest.raises(UnknownModelDenied):
        await messages_via_gate(
            gate=gov.gate,
            client=client,
            tenant_id=TENANT,
            request_id="r1",
            body=body(model="claude-unknown-9"),
        )
    assert gov.last.status == "denied"
    assert fake.requests == []


async def test_the_gate_lowers_max_tokens_to_what_the_budget_allows(
    make_governance: MakeGovernance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    # $0.001 a month and a worst case of 64,000 output tokens ($0.32): the Gate clamps.
    gov = make_governance(
        budgets={"per_window": [{"window": "month", "limit_usd": "0.001"}]},
        clamp_max_tokens=True,
    )
    result = await messages_via_gate(
        gate=gov.gate,
        client=client,
        tenant_id=TENANT,
        request_id="r1",
        body=body(max_tokens=64_000),
    )
    sent = fake.last_body["max_tokens"]
    assert 16 <= sent < 64_000
    # What was sent fits the budget, by hand: the input bound plus sent output tokens.
    assert result.receipt.status == "ok"
    assert Decimal(result.receipt.reserved_usd) <= Decimal("0.001")
    assert set(fake.last_body) == set(body())  # only max_tokens changed


async def test_a_budget_stop_sends_nothing(
    make_governance: MakeGovernance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    gov = make_governance(budgets={"per_window": [{"window": "month", "limit_usd": "0.0001"}]})
    with pytest.raises(BudgetExceeded):
        await messages_via_gate(
            gate=gov.gate,
            client=client,
            tenant_id=TENANT,
            request_id="r1",
            body=body(max_tokens=64_000),
        )
    assert fake.requests == []
    assert gov.last.status == "denied"


async def test_an_answer_without_usage_is_charged_its_reservation(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(report_usage=False))
    result = await messages_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=body()
    )
    assert result.receipt.usage_source == "reservation"
    assert result.receipt.actual_usd == result.receipt.reserved_usd != "0"


async def test_a_cache_writing_prompt_reserves_at_the_one_hour_write_price(
    gov: Governance, client: AsyncAnthropic
) -> None:
    system = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
    plain = await messages_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=body()
    )
    cached = await messages_via_gate(
        gate=gov.gate,
        client=client,
        tenant_id=TENANT,
        request_id="r2",
        body=body(system=system),
    )
    output = usd(out=64)
    plain_input = Decimal(plain.receipt.estimated_usd) - output
    cached_input = Decimal(cached.receipt.estimated_usd) - output
    # Every prompt token may be a 1-hour write: twice the input price.
    assert cached_input >= 2 * plain_input


async def test_count_tokens_is_governed_and_free(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    request = {"model": MODEL, "messages": [{"role": "user", "content": "one two three"}]}
    result = await count_tokens_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="c1", body=request
    )
    assert result.response.input_tokens == 1 * 3 + 3
    assert (result.receipt.status, result.receipt.actual_usd) == ("ok", "0")
    assert fake.requests[-1].path == "/v1/messages/count_tokens"
    with pytest.raises(UnknownModelDenied):
        await count_tokens_via_gate(
            gate=gov.gate,
            client=client,
            tenant_id=TENANT,
            request_id="c2",
            body={**request, "model": "claude-unknown-9"},
        )


# -- streams ----------------------------------------------------------------------------


async def test_a_stream_yields_every_event_and_settles_on_the_reported_usage(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three", input_tokens=40, cache_read_tokens=60))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    assert fake.requests == []  # admitted; nothing sent until read
    kinds = [event.type async for event in stream]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.usage_source) == ("ok", "reported")
    assert Decimal(receipt.actual_usd) == usd(**{"in": 40, "read": 60, "out": 3})
    assert fake.last_body["stream"] is True
    assert await gov.month() == (parse_usd(receipt.actual_usd), 0)


async def test_a_stream_the_consumer_stops_settles_once_as_cancelled(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three four five six", input_tokens=10))
    async with await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                break
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.usage_source) == ("cancelled", "counted")
    # Billed the reported input and the bytes shown ("one ") plus an end token.
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": 5})
    assert len(gov.receipts) == 1
    assert await gov.month() == (parse_usd(receipt.actual_usd), 0)
    assert await stream.aclose() is receipt  # settling again is a no-op


async def test_a_cancelled_task_settles_its_stream(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="a b c d e f g h", chunk_delay_s=0.05))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream.receipt is not None
    assert stream.receipt.status == "cancelled"
    assert (await gov.month())[1] == 0


async def test_an_error_event_mid_stream_raises_the_sdks_error_after_settling(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three", input_tokens=10, error_after=4))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    seen: list[str] = []

    async def consume() -> None:
        async for event in stream:
            seen.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as caught:
        await consume()
    assert caught.value.type == "overloaded_error"
    assert seen == ["message_start", "content_block_start", "content_block_delta"]  # no ping
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.usage_source) == ("upstream_error", "counted")
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": len("one ") + 1})


async def test_a_cut_connection_bills_what_was_counted(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three", input_tokens=10, break_after=4))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the SDK's transport raises
        async for _ in stream:
            pass
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "upstream_error"
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": len("one ") + 1})


async def test_a_stream_without_final_usage_is_billed_as_counted(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two", input_tokens=10, final_usage=False))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    async for _ in stream:
        pass
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.usage_source) == ("upstream_error", "counted")
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": len("one two") + 1})


async def test_a_cut_stream_that_was_thinking_is_billed_the_whole_output_limit(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(thinking="let me see", text="Paris", input_tokens=10, break_after=4))
    request = body(max_tokens=2_048, thinking={"type": "enabled", "budget_tokens": 1_024})
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=request
    )
    with pytest.raises(Exception):  # noqa: B017, PT011
        async for _ in stream:
            pass
    receipt = stream.receipt
    assert receipt is not None
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": 2_048})


async def test_an_upstream_overrunning_max_tokens_is_ended_at_the_limit(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="a b c", input_tokens=10, output_tokens=500, ignore_max_tokens=True))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    kinds = [event.type async for event in stream]
    assert "message_delta" not in kinds  # the overrunning event is not delivered
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "ok"
    assert "exceeded max_tokens" in str(receipt.error)
    # What the upstream says it billed is charged (flagged as overage above the hold).
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": 500})


async def test_a_long_stream_renews_its_reservation(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    renewals: list[str] = []
    original = gov.ledger.renew

    async def renew(**kwargs: Any) -> Any:
        renewals.append(kwargs["hold_id"])
        return await original(**kwargs)

    monkeypatch.setattr(gov.ledger, "renew", renew)
    fake.enqueue(Reply(text="one two three four"))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    async for _ in stream:
        gov.clock.advance(400)  # a third of the 900 s reservation TTL passes per event
    assert len(renewals) >= 2
    assert set(renewals) == {"s1"}
    assert stream.receipt is not None
    assert stream.receipt.status == "ok"
    assert not stream.receipt.late


async def test_a_clamped_thinking_request_keeps_its_budget_below_max_tokens(
    make_governance: MakeGovernance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    # $0.03 a month; a worst case of 16,000 output tokens at $5 ($0.08): the Gate clamps.
    gov = make_governance(
        budgets={"per_window": [{"window": "month", "limit_usd": "0.03"}]},
        clamp_max_tokens=True,
    )
    fake.enqueue(Reply(thinking="so", text="Paris"))
    request = body(max_tokens=16_000, thinking={"type": "enabled", "budget_tokens": 10_000})
    result = await messages_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=request
    )
    sent = fake.last_body
    assert sent["max_tokens"] < 16_000
    assert sent["thinking"]["budget_tokens"] < sent["max_tokens"]
    assert sent["thinking"]["budget_tokens"] >= 1_024
    assert result.receipt.status == "ok"
    assert result.response.content[0].type == "thinking"
    assert request["thinking"]["budget_tokens"] == 10_000  # the caller's body is untouched


async def test_a_streamed_body_is_refused_by_the_non_streaming_call(
    gov: Governance, client: AsyncAnthropic
) -> None:
    with pytest.raises(ValueError, match="messages_stream_via_gate"):
        await messages_via_gate(
            gate=gov.gate, client=client, tenant_id=TENANT, request_id="r1", body=body(stream=True)
        )


async def test_a_stream_refused_upstream_before_any_event_releases_its_reservation(
    gov: Governance, server: FakeAnthropicServer
) -> None:
    server.fake.enqueue(Fault.of("invalid_request_error", "messages: bad"))
    async with AsyncAnthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as client:
        stream = await messages_stream_via_gate(
            gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
        )

        async def consume() -> None:
            async for _ in stream:
                pass

        with pytest.raises(anthropic.BadRequestError):
            await consume()
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.upstream_status, receipt.actual_usd) == (
        "upstream_error",
        400,
        "0",
    )
    assert await gov.month() == (0, 0)


async def test_a_dropped_stream_settles_when_it_is_collected(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three four", input_tokens=10))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    async for event in stream:
        if event.type == "content_block_delta":
            break
    del stream
    gc.collect()
    for _ in range(20):
        if gov.receipts:
            break
        await asyncio.sleep(0.01)
    assert [r.status for r in gov.receipts] == ["cancelled"]
    assert (await gov.month())[1] == 0


async def test_an_admitted_stream_never_read_releases_when_dropped(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )
    assert (await gov.month())[1] > 0
    del stream
    gc.collect()
    for _ in range(20):
        if gov.receipts:
            break
        await asyncio.sleep(0.01)
    assert [(r.status, r.actual_usd) for r in gov.receipts] == [("cancelled", "0")]
    assert await gov.month() == (0, 0)
    assert fake.requests == []


async def test_a_stream_that_turns_to_garbage_settles_as_failed_with_what_was_counted(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three", input_tokens=10, garbage_after=4))
    stream = await messages_stream_via_gate(
        gate=gov.gate, client=client, tenant_id=TENANT, request_id="s1", body=body()
    )

    async def consume() -> None:
        async for _ in stream:
            pass

    with pytest.raises(ValueError):  # noqa: PT011 - the SDK's JSON decoding error
        await consume()
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.usage_source) == ("upstream_error", "counted")
    assert Decimal(receipt.actual_usd) == usd(**{"in": 10, "out": len("one ") + 1})

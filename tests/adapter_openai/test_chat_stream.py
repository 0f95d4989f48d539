"""Governed streamed chat completions: billing from the usage chunk, or from what was counted."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import openai
import pytest
from fakes.openai_upstream import DEFAULT_TEXT, FakeOpenAI, Fault, Reply, words
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from aegis.adapters.openai import GovernedStream, chat_completions_via_gate
from aegis.core import Usage, default_pricing_table, format_usd, parse_usd

if TYPE_CHECKING:
    from adapter_openai.conftest import Governance, MakeGovernance

MINI = default_pricing_table().price("gpt-4o-mini")
HELLO = [{"role": "user", "content": "Say hello."}]
TEXT = "one two three four five six seven eight"


async def open_stream(
    gov: Governance, client: AsyncOpenAI, rid: str = "s1", **extra: Any
) -> GovernedStream[ChatCompletionChunk]:
    body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": True, **extra}
    stream = await chat_completions_via_gate(
        gate=gov.gate, client=client, tenant_id="acme", request_id=rid, body=body
    )
    assert isinstance(stream, GovernedStream)
    return stream


async def drain(
    stream: GovernedStream[ChatCompletionChunk], into: list[ChatCompletionChunk]
) -> None:
    async for chunk in stream:
        into.append(chunk)


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_a_stream_is_billed_from_its_usage_chunk_which_is_withheld(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT, prompt_tokens=30, cached_tokens=10, completion_tokens=8))
    stream = await open_stream(gov, client)
    chunks = [chunk async for chunk in stream]
    assert text_of(chunks) == TEXT
    # The client did not ask for usage: no chunk without choices reaches it.
    assert all(chunk.choices for chunk in chunks)
    sent = fake.requests[0].body
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_completion_tokens"] == MINI.max_output_tokens
    receipt = stream.receipt
    assert receipt is not None
    assert receipt is gov.last
    assert receipt.status == "ok"
    assert receipt.usage_source == "reported"
    usage = Usage(input_tokens=30, cached_input_tokens=10, output_tokens=8)
    assert receipt.usage == usage
    cost = 20 * 150 + 10 * 75 + 8 * 600
    assert MINI.cost_nanos(usage) == cost
    assert await gov.month() == (cost, 0)


async def test_a_client_that_asked_for_usage_gets_the_usage_chunk(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT, prompt_tokens=30, completion_tokens=8))
    stream = await open_stream(gov, client, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == 30
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert gov.last.usage == Usage(input_tokens=30, output_tokens=8)


async def test_a_stream_cut_midway_is_billed_what_was_counted_and_the_error_propagates(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    # Event 1 is the role chunk; events 2..4 carry "one ", "two ", "three ".
    fake.enqueue(Reply(text=TEXT, break_after=4))
    stream = await open_stream(gov, client, max_completion_tokens=100)
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        await drain(stream, received)
    assert text_of(received) == "one two three "
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "upstream_error"
    assert receipt.usage_source == "counted"
    assert receipt.error == "stream interrupted: APIConnectionError"
    assert receipt.upstream_status == 200
    assert receipt.usage is not None
    # The input bound and the streamed bytes (plus an end token): never zero, never the
    # whole reservation.
    assert receipt.usage.output_tokens == len("one two three ") + 1
    assert receipt.usage.input_tokens == gov.last.usage.input_tokens  # type: ignore[union-attr]
    assert 0 < parse_usd(receipt.actual_usd) < parse_usd(receipt.reserved_usd)
    assert await gov.month() == (parse_usd(receipt.actual_usd), 0)


async def test_an_error_event_midway_raises_the_sdk_error_and_bills_what_was_counted(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT, error_after=3))
    stream = await open_stream(gov, client)
    with pytest.raises(openai.APIError) as caught:
        await drain(stream, [])
    assert caught.value.message == "The upstream failed mid-stream."
    assert stream.receipt is not None
    assert stream.receipt.status == "upstream_error"
    assert stream.receipt.usage_source == "counted"
    assert stream.receipt.error == "stream interrupted: APIError: server_error: stream_failed"
    assert await gov.month() == (parse_usd(stream.receipt.actual_usd), 0)


async def test_a_consumer_that_breaks_early_settles_on_aclose(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT))
    stream = await open_stream(gov, client, max_completion_tokens=100)
    seen = ""
    async for chunk in stream:
        seen += chunk.choices[0].delta.content or ""
        if seen == "one two ":
            break
    receipt = await stream.aclose()
    assert receipt is stream.receipt
    assert receipt.status == "cancelled"
    assert receipt.usage_source == "counted"
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == len("one two ") + 1
    assert await gov.month() == (parse_usd(receipt.actual_usd), 0)
    assert await stream.aclose() is receipt  # settles once


async def test_a_consumer_that_breaks_inside_async_with_settles_on_exit(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT))
    async with await open_stream(gov, client) as stream:
        async for _ in stream:
            break
    assert stream.receipt is not None
    assert stream.receipt.status == "cancelled"
    # Only the role chunk was read: nothing streamed, so only the input is billed.
    assert stream.receipt.usage is not None
    assert stream.receipt.usage.output_tokens == 0
    assert await gov.month() == (parse_usd(stream.receipt.actual_usd), 0)


async def test_a_plain_break_settles_when_asyncio_closes_the_loop_iterator(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT))
    stream = await open_stream(gov, client)
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            break
    for _ in range(100):  # event-loop turns, not time: asyncio finalizes the iterator
        if stream.receipt is not None:
            break
        await asyncio.sleep(0)
    assert stream.receipt is not None
    assert stream.receipt.status == "cancelled"
    assert await gov.month() == (parse_usd(stream.receipt.actual_usd), 0)


async def test_a_stream_never_opened_releases_on_aclose(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    stream = await open_stream(gov, client)
    receipt = await stream.aclose()
    assert receipt.status == "cancelled"
    assert receipt.usage is None
    assert await gov.month() == (0, 0)


async def test_a_stream_without_usage_is_billed_its_counted_output_not_zero(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT, report_usage=False))
    stream = await open_stream(gov, client, max_completion_tokens=100)
    chunks = [chunk async for chunk in stream]
    assert text_of(chunks) == TEXT
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "ok"
    assert receipt.usage_source == "counted"
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == len(TEXT) + 1
    assert parse_usd(receipt.actual_usd) > 0


async def test_an_upstream_that_ignores_the_limit_is_ended_at_the_reservation(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=DEFAULT_TEXT, ignore_max_tokens=True))
    stream = await open_stream(gov, client, max_completion_tokens=3)
    chunks = [chunk async for chunk in stream]  # ends cleanly, without an exception
    assert text_of(chunks) == "".join(words(DEFAULT_TEXT)[:3])
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "ok"
    assert receipt.usage_source == "counted"
    assert receipt.error is not None
    assert "exceeded max_completion_tokens" in receipt.error
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == 3
    assert not receipt.overage
    assert parse_usd(receipt.actual_usd) <= parse_usd(receipt.reserved_usd)


async def test_an_error_before_the_first_chunk_releases_and_raises_from_the_call(
    gov: Governance, upstream: Any, fake: FakeOpenAI
) -> None:
    fake.enqueue(Fault.rate_limited())
    async with AsyncOpenAI(base_url=upstream.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError):
            await open_stream(gov, client)
    assert gov.last.status == "upstream_error"
    assert gov.last.upstream_status == 429
    assert await gov.month() == (0, 0)


async def test_streamed_tool_calls_pass_through_and_are_billed(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    call = {"id": "call_1", "name": "lookup", "arguments": '{"q": "aegis"}'}
    fake.enqueue(Reply(text=None, tool_calls=[call], prompt_tokens=40, completion_tokens=9))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    stream = await open_stream(gov, client, tools=tools)
    arguments = ""
    async for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            if delta_call.function and delta_call.function.arguments:
                arguments += delta_call.function.arguments
    assert arguments == '{"q": "aegis"}'
    assert fake.requests[0].body["tools"] == tools
    assert gov.last.usage == Usage(input_tokens=40, output_tokens=9)


async def test_cancelling_the_consumer_task_settles_the_stream(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT, chunk_delay_s=0.05))
    stream = await open_stream(gov, client)
    got_one = asyncio.Event()

    async def consume() -> None:
        async for chunk in stream:
            if chunk.choices[0].delta.content:
                got_one.set()

    task = asyncio.create_task(consume())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    receipt = await stream.aclose()
    assert receipt.status == "cancelled"
    assert receipt.usage_source == "counted"
    assert await gov.month() == (parse_usd(receipt.actual_usd), 0)


async def test_a_long_stream_renews_its_reservation(
    make_governance: MakeGovernance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    gov = make_governance(reservation_ttl_s=60)
    fake.enqueue(Reply(text=TEXT, prompt_tokens=10, completion_tokens=8))
    stream = await open_stream(gov, client)
    async for _ in stream:
        gov.clock.advance(25)  # 9 chunks: 225 s in all, far beyond the 60 s TTL
    receipt = stream.receipt
    assert receipt is not None
    assert not receipt.late
    assert receipt.actual_usd == format_usd(10 * 150 + 8 * 600)


async def test_a_stream_dropped_unread_still_settles(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    stream = await open_stream(gov, client)
    permit = stream.permit
    del stream
    for _ in range(100):  # event-loop turns: the drop schedules the settlement
        if gov.receipts:
            break
        await asyncio.sleep(0)
    assert gov.last.request_id == permit.request_id
    assert gov.last.status == "cancelled"
    assert await gov.month() == (0, 0)


async def test_chunks_are_yielded_as_they_arrive(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=TEXT, chunk_delay_s=0.05))
    stream = await open_stream(gov, client)
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            # The first word is here while the upstream is still sending the rest.
            assert stream.receipt is None
            assert stream.meter.output_bytes == len("one ")
            break
    await stream.aclose()

"""Governed calls through the real google-genai SDK against the fake Gemini API."""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import pytest
from adapter_gemini._support import SDK_WARNING, TENANT, GateFactory
from fakes.gemini_upstream import FakeGeminiServer, Reply
from google import genai
from google.genai import errors as genai_errors, types

from aegis.adapters.gemini import (
    embed_content_via_gate,
    estimate_generate_content,
    generate_content_stream_via_gate,
    generate_content_via_gate,
)
from aegis.core import BudgetExceeded, PolicyDenied, Usage, format_usd

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

FLASH = "gemini-2.5-flash"  # $0.30 in, $0.03 cached, $2.50 out per Mtok: 300/30/2500 nanos


def flash_nanos(usage: Usage) -> int:
    uncached = usage.input_tokens - usage.cached_input_tokens
    return uncached * 300 + usage.cached_input_tokens * 30 + usage.output_tokens * 2500


async def test_generate_prices_thinking_and_cached_tokens_exactly(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(
        Reply(
            text="The answer is 42.",
            prompt_tokens=1000,
            cached_tokens=400,
            candidates_tokens=200,
            thoughts_tokens=300,
        )
    )
    result = await generate_content_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        run_id="r1",
        request_id="q1",
        model=FLASH,
        contents="What is the answer?",
        config={"max_output_tokens": 500, "thinking_config": {"thinking_budget": 1000}},
    )
    assert result.response.text == "The answer is 42."
    receipt = result.receipt
    assert receipt.usage == Usage(
        input_tokens=1000, cached_input_tokens=400, output_tokens=500, reasoning_tokens=300
    )
    # 600 x 300 + 400 x 30 + 500 x 2500 nano-USD
    assert receipt.actual_usd == format_usd(1_442_000) == "0.001442"
    assert receipt.usage_source == "reported"
    assert receipt.status == "ok"
    assert receipt.upstream_status == 200
    assert await g.pending_nanos() == 0


async def test_reservation_covers_output_plus_thinking_budget_and_is_sent(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    result = await generate_content_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        request_id="q1",
        model=FLASH,
        contents="hi",
        config=types.GenerateContentConfig(
            max_output_tokens=100, thinking_config=types.ThinkingConfig(thinking_budget=50)
        ),
    )
    sent = upstream.fake.last_body()
    assert sent["generationConfig"]["maxOutputTokens"] == 100
    assert sent["generationConfig"]["thinkingConfig"] == {"thinking_budget": 50}
    price = g.gate.pricing.price(FLASH)
    estimate = estimate_generate_content(
        sent, model=FLASH, model_max_output_tokens=65_536, context_window=1_048_576
    )
    # 100 visible + 50 thinking tokens (and the 1/32 margin thinking may run past a budget),
    # all billed at the output rate in the worst case.
    assert estimate.output_tokens == 152
    expected = price.worst_case_nanos(estimate.input_tokens, 152)
    assert result.receipt.reserved_usd == format_usd(expected)


async def test_unset_limits_reserve_the_maximum_output_and_the_largest_thinking_budget_sent(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    result = await generate_content_via_gate(
        gate=g.gate, client=client, tenant_id=TENANT, request_id="q1", model=FLASH, contents="hi"
    )
    sent = upstream.fake.last_body()
    # The model's maximum output is sent explicitly, and so is its largest thinking budget
    # (24,576 on 2.5 Flash), which is reserved with its 1/32 margin.
    assert sent["generationConfig"]["maxOutputTokens"] == 65_536
    assert sent["generationConfig"]["thinkingConfig"] == {"thinking_budget": 24_576}
    estimate = estimate_generate_content(
        sent, model=FLASH, model_max_output_tokens=65_536, context_window=1_048_576
    )
    assert estimate.output_tokens == 65_536 + 24_576 + 768
    expected = g.gate.pricing.price(FLASH).worst_case_nanos(estimate.input_tokens, 90_880)
    assert result.receipt.reserved_usd == format_usd(expected)


async def test_budget_denial_sends_no_request(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate(per_run_usd="0.001")
    with pytest.raises(BudgetExceeded):
        await generate_content_via_gate(
            gate=g.gate,
            client=client,
            tenant_id=TENANT,
            run_id="r1",
            request_id="q1",
            model=FLASH,
            contents="hi",
            config={"max_output_tokens": 1000},
        )
    with pytest.raises(BudgetExceeded):
        await generate_content_stream_via_gate(
            gate=g.gate,
            client=client,
            tenant_id=TENANT,
            run_id="r1",
            request_id="q2",
            model=FLASH,
            contents="hi",
        )
    assert upstream.fake.requests == []
    assert [r.status for r in g.sink.receipts] == ["denied", "denied"]
    assert await g.pending_nanos() == 0


async def test_policy_denial_of_embeddings_sends_no_request(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate(capabilities=["llm:invoke"])
    with pytest.raises(PolicyDenied):
        await embed_content_via_gate(
            gate=g.gate,
            client=client,
            tenant_id=TENANT,
            request_id="e1",
            model="gemini-embedding-001",
            contents=["a"],
        )
    assert upstream.fake.requests == []


async def test_clamped_call_carries_the_permits_limit(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    # $0.01 buys 4000 output tokens at $2.50/Mtok, minus the prompt.
    g = make_gate(per_run_usd="0.01", clamp_max_tokens=True)
    result = await generate_content_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        run_id="r1",
        request_id="q1",
        model=FLASH,
        contents="hi",
        config={"max_output_tokens": 8000, "thinking_config": {"thinking_budget": 8000}},
    )
    sent = upstream.fake.last_body()["generationConfig"]
    visible, thinking = sent["maxOutputTokens"], sent["thinkingConfig"]["thinking_budget"]
    assert visible > 0
    assert thinking > 0
    assert visible + thinking < 4000
    assert visible == thinking or abs(visible - thinking) <= 1  # split 8000:8000
    assert result.receipt.status == "ok"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (429, genai_errors.ClientError),
        (400, genai_errors.ClientError),
        (503, genai_errors.ServerError),
    ],
)
async def test_api_errors_release_receipt_and_reraise(
    make_gate: GateFactory,
    client: genai.Client,
    upstream: FakeGeminiServer,
    status: int,
    error_type: type[genai_errors.APIError],
) -> None:
    g = make_gate()
    upstream.fake.script(Reply.error(status, "scripted"))
    with pytest.raises(error_type) as caught:
        await generate_content_via_gate(
            gate=g.gate,
            client=client,
            tenant_id=TENANT,
            run_id="r1",
            request_id="q1",
            model=FLASH,
            contents="hi",
        )
    assert caught.value.code == status
    assert caught.value.message == "scripted"
    receipt = g.sink.receipts[-1]
    assert receipt.status == "upstream_error"
    assert receipt.upstream_status == status
    assert receipt.actual_usd == "0"
    assert receipt.usage_source == "none"
    assert await g.pending_nanos() == 0


async def test_stream_charges_the_last_cumulative_usage(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(
        Reply(text="one two three four five six", chunks=3, prompt_tokens=10, thoughts_tokens=7)
    )
    stream = await generate_content_stream_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        run_id="r1",
        request_id="q1",
        model=FLASH,
        contents="count",
        config={"max_output_tokens": 64},
    )
    texts = [chunk.text async for chunk in stream]
    assert texts == ["one two ", "three four ", "five six"]
    receipt = stream.receipt
    assert receipt is not None
    # Running totals 2, 4, 6 candidates (+7 thoughts on each): the last, never the sum.
    assert receipt.usage == Usage(input_tokens=10, output_tokens=13, reasoning_tokens=7)
    assert receipt.usage_source == "reported"
    assert receipt.actual_usd == format_usd(flash_nanos(receipt.usage))
    assert upstream.fake.requests[-1].action == "streamGenerateContent"
    assert upstream.fake.requests[-1].query == {"alt": "sse"}
    assert upstream.fake.last_body()["generationConfig"]["maxOutputTokens"] == 64
    assert await g.pending_nanos() == 0


async def test_stream_broken_midway_charges_what_arrived_and_reraises(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(
        Reply(
            text="one two three four five six",
            chunks=3,
            prompt_tokens=10,
            break_after=1,
            partial_tail='data: {"candidates": [{"content": {"par',
        )
    )
    stream = await generate_content_stream_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        run_id="r1",
        request_id="q1",
        model=FLASH,
        contents="count",
        config={"max_output_tokens": 64},
    )
    received: list[str | None] = []

    async def read_all() -> None:
        async for chunk in stream:
            received.append(chunk.text)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read_all()
    assert received == ["one two "]
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "upstream_error"
    assert receipt.usage_source == "counted"
    assert receipt.usage is not None
    assert receipt.usage.input_tokens == 10
    # "one two " is 8 bytes: at least the 2 reported tokens, at most its byte count.
    assert 2 <= receipt.usage.output_tokens <= 8
    assert receipt.actual_usd == format_usd(flash_nanos(receipt.usage))
    assert await g.pending_nanos() == 0


async def test_stream_closed_early_settles_at_once(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(Reply(text="one two three four five six", chunks=3, prompt_tokens=10))
    async with await generate_content_stream_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        run_id="r1",
        request_id="q1",
        model=FLASH,
        contents="count",
    ) as stream:
        async for _chunk in stream:
            break
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "cancelled"
    assert receipt.upstream_status == 200
    assert receipt.usage_source == "counted"
    assert receipt.usage is not None
    assert receipt.usage.input_tokens == 10
    assert receipt.usage.output_tokens >= 2
    assert await g.pending_nanos() == 0


async def test_stream_closed_before_reading_sends_nothing_and_releases(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    stream = await generate_content_stream_via_gate(
        gate=g.gate, client=client, tenant_id=TENANT, request_id="q1", model=FLASH, contents="x"
    )
    assert stream.permit.max_output_tokens == 65_536 + 24_576 + 768
    await stream.aclose()
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "cancelled"
    assert receipt.actual_usd == "0"
    assert upstream.fake.requests == []
    assert await g.pending_nanos() == 0


async def test_stream_api_error_before_first_chunk_releases(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(Reply.error(500, "boom"))
    stream = await generate_content_stream_via_gate(
        gate=g.gate, client=client, tenant_id=TENANT, request_id="q1", model=FLASH, contents="x"
    )
    with pytest.raises(genai_errors.ServerError):
        async for _ in stream:
            pass
    receipt = stream.receipt
    assert receipt is not None
    assert (receipt.status, receipt.upstream_status, receipt.actual_usd) == (
        "upstream_error",
        500,
        "0",
    )


async def test_embeddings_are_priced_from_reported_prompt_tokens(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(Reply(prompt_tokens=1234))
    result = await embed_content_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        request_id="e1",
        model="gemini-embedding-001",
        contents=["first document", "second document"],
        config={"output_dimensionality": 4},
    )
    embeddings = result.response.embeddings
    assert embeddings is not None
    assert [len(e.values or []) for e in embeddings] == [4, 4]
    assert upstream.fake.requests[-1].action == "batchEmbedContents"
    receipt = result.receipt
    assert receipt.capability == "embeddings:create"
    assert receipt.usage == Usage(input_tokens=1234)
    assert receipt.actual_usd == format_usd(1234 * 150)  # $0.15/Mtok
    assert await g.pending_nanos() == 0


async def test_embeddings_without_usage_charge_the_reservation(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(Reply(usage=False))
    result = await embed_content_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        request_id="e1",
        model="gemini-embedding-001",
        contents="hello",
    )
    assert result.receipt.usage_source == "reservation"
    assert result.receipt.actual_usd == result.receipt.reserved_usd != "0"


async def test_one_governed_call_is_one_request_even_with_python_function_tools(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    g = make_gate()
    upstream.fake.script(
        Reply(parts=[{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}])
    )
    result = await generate_content_via_gate(
        gate=g.gate,
        client=client,
        tenant_id=TENANT,
        request_id="q1",
        model=FLASH,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert len(upstream.fake.requests) == 1
    calls = result.response.function_calls
    assert calls is not None
    assert calls[0].name == "get_weather"
    assert calls[0].args == {"city": "Paris"}


async def test_upstream_timeout_releases_and_propagates(
    make_gate: GateFactory, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(Reply(delay_s=1.0))
    impatient = genai.Client(
        api_key="test",
        http_options=types.HttpOptions(base_url=upstream.url, api_version="v1beta", timeout=50),
    )
    try:
        with pytest.raises(TimeoutError):
            await generate_content_via_gate(
                gate=g.gate,
                client=impatient,
                tenant_id=TENANT,
                run_id="r1",
                request_id="q1",
                model=FLASH,
                contents="hi",
            )
    finally:
        await impatient.aio.aclose()
    receipt = g.sink.receipts[-1]
    assert (receipt.status, receipt.actual_usd, receipt.upstream_status) == (
        "upstream_error",
        "0",
        None,
    )
    assert await g.pending_nanos() == 0


async def test_abandoned_stream_is_settled_when_collected(
    make_gate: GateFactory, client: genai.Client, upstream: FakeGeminiServer
) -> None:
    g = make_gate()
    upstream.fake.script(Reply(text="one two three four five six", chunks=3, prompt_tokens=10))

    async def read_one_then_drop() -> None:
        stream = await generate_content_stream_via_gate(
            gate=g.gate,
            client=client,
            tenant_id=TENANT,
            run_id="r1",
            request_id="q1",
            model=FLASH,
            contents="count",
        )
        async for _chunk in stream:
            break  # no async with, no aclose: the stream is simply dropped

    await read_one_then_drop()
    gc.collect()
    # The event loop closes a collected async generator in a task of its own; let it run.
    for _ in range(3000):
        if len(g.sink.receipts) == 1:
            break
        await asyncio.sleep(0.01)
    receipt = g.sink.receipts[-1]
    assert (receipt.request_id, receipt.status, receipt.usage_source) == (
        "q1",
        "cancelled",
        "counted",
    )
    assert await g.pending_nanos() == 0

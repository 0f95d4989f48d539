"""Governed Responses API calls (streamed and not) and embeddings."""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import openai
import pytest
from fakes.openai_upstream import DEFAULT_TEXT, FakeOpenAI, Reply, words
from openai import AsyncOpenAI
from openai.types import CreateEmbeddingResponse
from openai.types.responses import Response, ResponseStreamEvent

from aegis.adapters.openai import (
    GovernedStream,
    embeddings_via_gate,
    estimate_responses_request,
    responses_via_gate,
)
from aegis.core import (
    BudgetExceeded,
    PolicyDenied,
    Usage,
    default_pricing_table,
    format_usd,
    parse_usd,
)

if TYPE_CHECKING:
    from adapter_openai.conftest import Governance, MakeGovernance

PRICES = default_pricing_table()
O4 = PRICES.price("o4-mini")  # 1100 / 275 / 4400 nano-USD per token
SMALL = PRICES.price("text-embedding-3-small")  # 20 nano-USD per token


async def respond(gov: Governance, client: AsyncOpenAI, body: dict[str, Any]) -> Any:
    return await responses_via_gate(
        gate=gov.gate, client=client, tenant_id="acme", request_id="resp-1", body=body
    )


async def test_a_response_is_billed_with_cached_and_reasoning_tokens(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(
        Reply(
            text="Hi!",
            prompt_tokens=500,
            cached_tokens=200,
            completion_tokens=90,
            reasoning_tokens=60,
        )
    )
    body = {"model": "o4-mini", "input": "Say hi.", "instructions": "Be brief."}
    result = await respond(gov, client, body)
    assert isinstance(result, Response)
    assert result.output_text == "Hi!"
    assert fake.requests[0].path == "/v1/responses"
    assert fake.requests[0].body == {**body, "max_output_tokens": O4.max_output_tokens}
    usage = Usage(input_tokens=500, cached_input_tokens=200, output_tokens=90, reasoning_tokens=60)
    assert gov.last.usage == usage
    expected = 300 * 1100 + 200 * 275 + 90 * 4400
    assert O4.cost_nanos(usage) == expected
    assert await gov.month() == (expected, 0)


async def test_a_response_with_hidden_input_reserves_the_context_window(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    body = {
        "model": "o4-mini",
        "input": "And then?",
        "previous_response_id": "resp_0",
        "max_output_tokens": 100,
    }
    await respond(gov, client, body)
    assert gov.last.reserved_usd == format_usd(O4.worst_case_nanos(O4.context_window, 100))
    assert estimate_responses_request(body).input_tokens < O4.context_window


async def test_a_streamed_response_is_billed_from_response_completed(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text="one two three", prompt_tokens=50, completion_tokens=3))
    stream = await respond(gov, client, {"model": "o4-mini", "input": "count", "stream": True})
    assert isinstance(stream, GovernedStream)
    events: list[ResponseStreamEvent] = [event async for event in stream]
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "one two three"
    assert stream.receipt is not None
    assert stream.receipt.usage == Usage(input_tokens=50, output_tokens=3)
    assert stream.receipt.usage_source == "reported"
    assert await gov.month() == (50 * 1100 + 3 * 4400, 0)


async def test_a_streamed_response_cut_midway_is_billed_what_was_counted(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    # created, in_progress, item added, part added, then deltas "one ", "two ".
    fake.enqueue(Reply(text="one two three", break_after=6))
    stream = await respond(gov, client, {"model": "o4-mini", "input": "count", "stream": True})
    assert isinstance(stream, GovernedStream)
    with pytest.raises(openai.APIConnectionError):
        _ = [event async for event in stream]
    receipt = stream.receipt
    assert receipt is not None
    assert receipt.status == "upstream_error"
    assert receipt.usage_source == "counted"
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == len("one two ") + 1
    assert await gov.month() == (parse_usd(receipt.actual_usd), 0)


async def test_a_streamed_response_error_event_is_an_upstream_error(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text="one two three", error_after=5))
    stream = await respond(gov, client, {"model": "o4-mini", "input": "count", "stream": True})
    assert isinstance(stream, GovernedStream)
    events = [event async for event in stream]
    assert events[-1].type == "error"
    assert stream.receipt is not None
    assert stream.receipt.status == "upstream_error"
    assert stream.receipt.error == "upstream error event: stream_failed"
    assert stream.receipt.usage_source == "counted"


async def test_a_response_stream_that_ignores_the_limit_is_ended(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(text=DEFAULT_TEXT, ignore_max_tokens=True))
    stream = await respond(
        gov, client, {"model": "o4-mini", "input": "talk", "stream": True, "max_output_tokens": 4}
    )
    assert isinstance(stream, GovernedStream)
    deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "".join(words(DEFAULT_TEXT)[:4])
    assert stream.receipt is not None
    assert stream.receipt.usage is not None
    assert stream.receipt.usage.output_tokens == 4
    assert not stream.receipt.overage


async def test_an_incomplete_response_is_still_billed_its_usage(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    result = await respond(
        gov, client, {"model": "o4-mini", "input": "talk", "max_output_tokens": 2}
    )
    assert isinstance(result, Response)
    assert result.status == "incomplete"
    assert gov.last.status == "ok"
    assert gov.last.usage is not None
    assert gov.last.usage.output_tokens == 2


async def embed(gov: Governance, client: AsyncOpenAI, body: dict[str, Any]) -> Any:
    return await embeddings_via_gate(
        gate=gov.gate, client=client, tenant_id="acme", request_id="emb-1", body=body
    )


async def test_embeddings_are_billed_their_input(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    fake.enqueue(Reply(prompt_tokens=7))
    body = {"model": "text-embedding-3-small", "input": ["hello world", "bye"]}
    result = await embed(gov, client, body)
    assert isinstance(result, CreateEmbeddingResponse)
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 8
    assert gov.last.capability == "embeddings:create"
    assert gov.last.usage == Usage(input_tokens=7)
    assert await gov.month() == (7 * 20, 0)
    # The body reaches the server as given (no output limit is added to embeddings).
    assert {k: v for k, v in fake.requests[0].body.items() if k != "encoding_format"} == body


async def test_base64_embeddings_pass_through(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": "x",
        "encoding_format": "base64",
        "dimensions": 4,
    }
    result = await embed(gov, client, body)
    raw = result.data[0].embedding
    assert isinstance(raw, str)
    assert len(struct.unpack("<4f", base64.b64decode(raw))) == 4
    assert fake.requests[0].body == body


async def test_embeddings_need_their_capability_and_budget(
    make_governance: MakeGovernance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    gov = make_governance(capabilities=["llm:invoke"])
    with pytest.raises(PolicyDenied):
        await embed(gov, client, {"model": "text-embedding-3-small", "input": "x"})
    poor = make_governance(budgets={"per_window": [{"window": "day", "limit_usd": "0.00000001"}]})
    with pytest.raises(BudgetExceeded):
        await embed(poor, client, {"model": "text-embedding-3-small", "input": "x" * 1000})
    assert fake.requests == []


async def test_responses_tools_and_text_format_pass_through_untouched(
    gov: Governance, client: AsyncOpenAI, fake: FakeOpenAI
) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": False,
        }
    ]
    text = {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}}
    body = {
        "model": "o4-mini",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Paris?"}]}],
        "tools": tools,
        "text": text,
        "max_output_tokens": 300,
        "reasoning": {"effort": "low"},
    }
    call = {"id": "call_7", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    fake.enqueue(Reply(text=None, tool_calls=[call]))
    result = await respond(gov, client, body)
    assert isinstance(result, Response)
    assert fake.requests[0].body == body
    (item,) = result.output
    assert item.type == "function_call"
    assert item.arguments == '{"city": "Paris"}'

"""Client matrix: the openai Python SDK (its default retries on) against the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from clients.conftest import ACME, BROKE, NARROW, Matrix
from fakes.gemini_upstream import Reply as GeminiReply
from fakes.openai_upstream import Fault, Reply
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from pydantic import BaseModel


@pytest.fixture
async def client(matrix: Matrix) -> AsyncIterator[openai.AsyncOpenAI]:
    # The SDK's defaults: 2 retries, honouring x-should-retry and retry-after.
    async with openai.AsyncOpenAI(base_url=matrix.openai_url, api_key=ACME) as c:
        yield c


async def test_chat(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    # One request id, the proxy's; the provider's is kept apart.
    assert raw.headers.get_list("x-request-id") == [raw.request_id]
    assert raw.headers["x-upstream-request-id"].startswith("req_")
    matrix.seen.assert_ids()


async def test_chat_stream(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}], stream=True
    )
    assert raw.headers.get_list("x-request-id") == [raw.request_id]
    assert raw.headers["x-upstream-request-id"].startswith("req_")
    stream = raw.parse()
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("Hello!")
    matrix.seen.assert_ids()


async def test_tools(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    matrix.openai.fake.enqueue(
        Reply(text=None, tool_calls=[{"name": "get_weather", "arguments": '{"city": "Oslo"}'}])
    )
    reply = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
    )
    calls = reply.choices[0].message.tool_calls
    assert calls is not None
    assert isinstance(calls[0], ChatCompletionMessageFunctionToolCall)
    assert calls[0].function.name == "get_weather"


class City(BaseModel):
    name: str
    country: str


async def test_structured_output(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    matrix.openai.fake.enqueue(Reply(text='{"name": "Oslo", "country": "Norway"}'))
    parsed = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "A city"}],
        response_format=City,
    )
    assert parsed.choices[0].message.parsed == City(name="Oslo", country="Norway")


async def test_responses_and_reading_one_back(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="gpt-4o-mini", input="Hello!")
    assert response.output_text
    again = await client.responses.retrieve(response.id)
    assert again.id == response.id
    assert again.output_text == response.output_text
    # Another tenant never reads it: the same 404 as for an id that does not exist.
    async with openai.AsyncOpenAI(base_url=matrix.openai_url, api_key=BROKE) as other:
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve("resp_never_made")
    matrix.seen.assert_ids(receipts=False)


async def test_responses_stream_then_read_back(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model="gpt-4o-mini", input="Hello!") as stream:
        final = await stream.get_final_response()
    assert final.output_text
    assert (await client.responses.retrieve(final.id)).id == final.id


async def test_input_tokens(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    counted = await client.responses.input_tokens.count(model="gpt-4o-mini", input="one two")
    assert counted.input_tokens > 0
    receipt = matrix.receipts[-1]
    assert (receipt.status, receipt.actual_usd) == ("ok", "0")


async def test_embeddings(client: openai.AsyncOpenAI) -> None:
    result = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2


async def test_embeddings_of_a_gemini_model(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    result = await client.embeddings.create(model="gemini-embedding-001", input=["a b", "c"])
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert matrix.gemini.fake.requests[-1].action == "batchEmbedContents"


async def test_responses_served_by_gemini(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gemini-2.5-flash", input="Hello!", instructions="be brief", max_output_tokens=50
    )
    assert response.output_text == "Hello from the fake Gemini."
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    sent = matrix.gemini.fake.requests[-1].body
    assert sent["systemInstruction"]["parts"][0]["text"] == "be brief"
    assert sent["generationConfig"]["maxOutputTokens"] == 50
    async with client.responses.stream(model="gemini-2.5-flash", input="Hello!") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello from the fake Gemini."
    assert final.usage is not None
    assert matrix.receipts[-1].usage_source == "reported"
    matrix.seen.assert_ids()


async def test_responses_tools_served_by_gemini(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    matrix.gemini.fake.script(GeminiReply(parts=[call]))
    response = await client.responses.create(
        model="gemini-2.5-flash",
        input="Weather in Oslo?",
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": False,
            }
        ],
    )
    item = response.output[0]
    assert item.type == "function_call"
    assert (item.name, item.arguments) == ("get_weather", '{"city": "Oslo"}')


async def test_what_gemini_cannot_serve_is_refused_naming_the_field(
    matrix: Matrix, client: openai.AsyncOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(
            model="gemini-2.5-flash", input="Hello!", previous_response_id="resp_1"
        )
    assert info.value.param == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as legacy:
        await client.completions.create(model="gemini-2.5-flash", prompt="Hello")
    assert "use /v1/chat/completions" in legacy.value.message
    assert matrix.gemini.fake.requests == []


async def test_legacy_completions(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    completion = await client.completions.create(model="gpt-4o-mini", prompt="Say hi")
    assert completion.choices[0].text
    # The legacy default (16 tokens) is what goes upstream when the client sets none.
    assert matrix.openai.fake.requests[-1].body["max_tokens"] == 16
    stream = await client.completions.create(
        model="gpt-4o-mini", prompt="Say hi", max_tokens=5, stream=True
    )
    assert "".join([c.choices[0].text async for c in stream if c.choices])


async def test_moderations(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    result = await client.moderations.create(input="I will kill the process")
    assert result.results[0].flagged
    receipt = matrix.receipts[-1]
    assert (receipt.status, receipt.actual_usd) == ("ok", "0")


async def test_models_list_and_retrieve(client: openai.AsyncOpenAI) -> None:
    listed = [m.id async for m in client.models.list()]
    assert "gpt-4o-mini" in listed
    assert "gemini-2.5-flash" in listed
    assert (await client.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


async def test_policy_refusal_names_its_reason_and_receipt(matrix: Matrix) -> None:
    async with openai.AsyncOpenAI(base_url=matrix.openai_url, api_key=NARROW) as narrow:
        with pytest.raises(openai.PermissionDeniedError) as info:
            await narrow.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
    assert info.value.code == "model_not_allowed"
    answer = matrix.seen.answers[-1]
    assert answer.headers["x-aegis-receipt-id"] == matrix.receipts[-1].receipt_id
    assert matrix.receipts[-1].status == "denied"
    assert len(matrix.seen.answers) == 1  # 403 is never retried
    matrix.seen.assert_ids()


async def test_bad_request_has_an_id_too(matrix: Matrix, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert info.value.request_id
    assert matrix.seen.answers[-1].headers["x-request-id"] == info.value.request_id


async def test_budget_stop_is_one_request(matrix: Matrix) -> None:
    async with openai.AsyncOpenAI(base_url=matrix.openai_url, api_key=BROKE) as broke:
        with pytest.raises(openai.RateLimitError) as info:
            await broke.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
            )
    assert info.value.type == "budget_exceeded"
    assert "budget stop" in info.value.message
    assert len(matrix.seen.to("/v1/chat/completions")) == 1  # the SDK's 2 retries not used
    matrix.seen.assert_ids()
    assert info.value.request_id == matrix.seen.answers[-1].headers["x-request-id"]
    assert matrix.openai.fake.requests == []


async def test_answer_without_usage_is_billed_as_counted(
    matrix: Matrix, client: openai.AsyncOpenAI
) -> None:
    matrix.openai.fake.enqueue(Reply(text="One word.", report_usage=False))
    await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}]
    )
    receipt = matrix.receipts[-1]
    assert receipt.usage_source == "counted"
    # Counted: cents of a cent, not the whole reservation (16,384 output tokens of gpt-4o).
    assert float(receipt.actual_usd) < 0.001 < float(receipt.estimated_usd)


async def test_parallel_tool_calls_false_is_honoured_for_gemini(
    matrix: Matrix, client: openai.AsyncOpenAI
) -> None:
    calls = [
        {"functionCall": {"name": "get_weather", "args": {"city": city}}}
        for city in ("Oslo", "Rome")
    ]
    matrix.gemini.fake.script(GeminiReply(parts=calls), GeminiReply(parts=calls))
    tools: list[ChatCompletionToolParam] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Oslo and Rome?"}]
    both = await client.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=tools
    )
    assert len(both.choices[0].message.tool_calls or []) == 2
    one = await client.chat.completions.create(
        model="gemini-2.5-flash", messages=messages, tools=tools, parallel_tool_calls=False
    )
    assert len(one.choices[0].message.tool_calls or []) == 1


async def test_provider_failures_carry_ids(matrix: Matrix) -> None:
    matrix.openai.fake.enqueue(Fault.server_error())
    async with openai.AsyncOpenAI(
        base_url=matrix.openai_url, api_key=ACME, max_retries=0
    ) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.request_id == matrix.seen.answers[-1].headers["x-request-id"]
        await matrix.openai.close()  # the provider is gone: the proxy's own 502
        with pytest.raises(openai.InternalServerError) as gone:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    assert gone.value.status_code == 502
    matrix.seen.assert_ids()
    assert [a.headers["x-aegis-receipt-id"] for a in matrix.seen.answers] == [
        r.receipt_id for r in matrix.receipts
    ]

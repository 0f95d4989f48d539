"""Round trips: the real OpenAI SDK -> translation -> the fake Gemini API -> translation back.

The fake rejects any field the Gemini API does not know, so these also check that translated
requests are valid Gemini requests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from adapter_gemini._bridge import create_bridge
from aiohttp.test_utils import TestServer
from fakes.gemini_upstream import FakeGeminiServer, Reply

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
async def oai(upstream: FakeGeminiServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with TestServer(create_bridge(upstream.url)) as bridge:
        client = openai.AsyncOpenAI(
            base_url=str(bridge.make_url("/v1")), api_key="test", max_retries=0
        )
        yield client
        await client.close()


async def test_chat_completion_with_tool_calls_round_trip(
    oai: openai.AsyncOpenAI, upstream: FakeGeminiServer
) -> None:
    upstream.fake.script(
        Reply(
            parts=[
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            ],
            prompt_tokens=40,
            cached_tokens=8,
            candidates_tokens=12,
            thoughts_tokens=20,
        )
    )
    completion = await oai.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        tools=TOOLS,
        tool_choice="auto",
        max_completion_tokens=256,
        temperature=0,
    )
    sent = upstream.fake.last_body()
    assert sent["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert sent["generationConfig"] == {"temperature": 0, "maxOutputTokens": 256}
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 32, 72)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 8
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 20

    # The next turn sends the call and its result back; Gemini sees a function call and answer.
    upstream.fake.script(Reply(text="Sunny in Paris."))
    follow = await oai.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
        ],
        tools=TOOLS,
    )
    assert follow.choices[0].message.content == "Sunny in Paris."
    contents = upstream.fake.last_body()["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][1] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}}
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"result": '{"sky": "sunny"}'}}}
    ]


async def test_streamed_chat_completion_with_usage_chunk(
    oai: openai.AsyncOpenAI, upstream: FakeGeminiServer
) -> None:
    upstream.fake.script(
        Reply(text="one two three four five", chunks=3, prompt_tokens=9, thoughts_tokens=6)
    )
    stream = await oai.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Count to five."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert upstream.fake.requests[-1].action == "streamGenerateContent"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert finishes.count("stop") == 1
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (9, 5 + 6)


async def test_gemini_errors_reach_openai_clients_as_their_status(
    oai: openai.AsyncOpenAI, upstream: FakeGeminiServer
) -> None:
    upstream.fake.script(Reply.error(429, "Quota exceeded"))
    with pytest.raises(openai.RateLimitError) as caught:
        await oai.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "resource_exhausted"
    assert "Quota exceeded" in caught.value.message


async def test_untranslatable_request_is_a_400_naming_the_field(
    oai: openai.AsyncOpenAI, upstream: FakeGeminiServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(
            model="gemini-2.5-flash",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
                    ],
                }
            ],
        )
    assert caught.value.param == "messages[0].content[1].image_url.url"
    assert upstream.fake.requests == []


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_and_multiple_candidates(
    oai: openai.AsyncOpenAI, upstream: FakeGeminiServer, stream: bool
) -> None:
    upstream.fake.script(Reply(text='{"x": 1}'))
    kwargs: dict[str, Any] = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "x?"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": {"type": "object"}},
        },
    }
    if stream:
        chunks = [c async for c in await oai.chat.completions.create(stream=True, **kwargs)]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = await oai.chat.completions.create(n=2, **kwargs)
        assert [c.index for c in completion.choices] == [0, 1]
        text = completion.choices[1].message.content or ""
        assert upstream.fake.last_body()["generationConfig"]["candidateCount"] == 2
    assert json.loads(text) == {"x": 1}
    assert upstream.fake.last_body()["generationConfig"]["responseJsonSchema"] == {"type": "object"}


async def test_embeddings_round_trip_in_both_encodings(
    oai: openai.AsyncOpenAI, upstream: FakeGeminiServer
) -> None:
    upstream.fake.script(Reply(prompt_tokens=6), Reply(prompt_tokens=6))
    by_default = await oai.embeddings.create(
        model="gemini-embedding-001", input=["first text", "second text"], dimensions=4
    )
    as_floats = await oai.embeddings.create(
        model="gemini-embedding-001",
        input=["first text", "second text"],
        dimensions=4,
        encoding_format="float",
    )
    sent = upstream.fake.last_body()["requests"]
    assert [r["outputDimensionality"] for r in sent] == [4, 4]
    assert [r["model"] for r in sent] == ["models/gemini-embedding-001"] * 2
    # The fake's values are multiples of 1/128, exact in float32: both encodings agree exactly.
    assert [d.embedding for d in by_default.data] == [d.embedding for d in as_floats.data]
    assert [len(d.embedding) for d in by_default.data] == [4, 4]
    assert by_default.usage.prompt_tokens == 6

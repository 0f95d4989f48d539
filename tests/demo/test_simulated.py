"""The demo's simulated upstream speaks the real wire formats: the official SDKs, pointed at
it directly, get well-formed answers with token usage that matches what they streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from anthropic import AsyncAnthropic
from google import genai
from openai import AsyncOpenAI, InternalServerError

from demo.simulated import SimulatedUpstream, count_tokens


@pytest.fixture
async def simulated() -> AsyncIterator[SimulatedUpstream]:
    upstream = SimulatedUpstream(latency_scale=0)
    await upstream.start()
    yield upstream
    await upstream.stop()


async def test_openai_sdk_stream_with_usage(simulated: SimulatedUpstream) -> None:
    async with AsyncOpenAI(
        base_url=simulated.url + "/openai/v1", api_key="sk-x", max_retries=0
    ) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Write a haiku about budgets."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage, finish = [], None, None
        async for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
    text = "".join(pieces)
    assert text.startswith("(simulated gpt-4o) Budgets drain in bars")
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == count_tokens(text) == len([p for p in pieces if p])
    assert usage.prompt_tokens == count_tokens("Write a haiku about budgets.") + 4 + 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_openai_sdk_max_tokens_cuts_the_reply(simulated: SimulatedUpstream) -> None:
    async with AsyncOpenAI(
        base_url=simulated.url + "/openai/v1", api_key="sk-x", max_retries=0
    ) as client:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=7
        )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 7
    assert count_tokens(reply.choices[0].message.content or "") == 7


async def test_openai_side_fails_on_demand(simulated: SimulatedUpstream) -> None:
    simulated.openai_failing = True
    async with AsyncOpenAI(
        base_url=simulated.url + "/openai/v1", api_key="sk-x", max_retries=0
    ) as client:
        with pytest.raises(
            InternalServerError, match="simulated OpenAI upstream is down"
        ) as failure:
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
    assert failure.value.status_code == 503
    simulated.openai_failing = False
    assert simulated.calls["openai"] == 1


async def test_google_genai_sdk_stream_and_generate(simulated: SimulatedUpstream) -> None:
    client = genai.Client(
        api_key="g-x", http_options=genai.types.HttpOptions(base_url=simulated.url + "/gemini")
    )
    texts, last = [], None
    async for chunk in await client.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Summarize the meeting."
    ):
        texts.append(chunk.text or "")
        last = chunk
    text = "".join(texts)
    assert text.startswith("(simulated gemini-2.5-flash) Summary of the meeting")
    assert last is not None
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == count_tokens(text)
    assert last.candidates
    assert last.candidates[0].finish_reason == genai.types.FinishReason.STOP
    reply = await client.aio.models.generate_content(
        model="gemini-2.0-flash",
        contents="hello",
        config=genai.types.GenerateContentConfig(max_output_tokens=5),
    )
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.candidates_token_count == 5
    assert reply.candidates
    assert reply.candidates[0].finish_reason == "MAX_TOKENS"
    assert simulated.calls["gemini"] == 2


async def test_a_call_without_a_key_is_refused_like_the_real_apis(
    simulated: SimulatedUpstream,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            simulated.url + "/openai/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "missing_api_key"
        async with http.post(
            simulated.url + "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"]["status"] == "PERMISSION_DENIED"


async def test_anthropic_sdk_create_and_stream(simulated: SimulatedUpstream) -> None:
    url = simulated.url + "/anthropic"
    async with AsyncAnthropic(base_url=url, api_key="sk-ant-x", max_retries=0) as client:
        message = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=5,
            messages=[{"role": "user", "content": "Write a haiku."}],
        )
        async with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=400,
            messages=[{"role": "user", "content": "Summarize the meeting."}],
        ) as stream:
            streamed = await stream.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert streamed.stop_reason == "end_turn"
    (block,) = streamed.content
    assert block.type == "text"
    assert block.text.startswith("(simulated claude-haiku-4-5) Summary of the meeting")
    assert streamed.usage.output_tokens == count_tokens(block.text)
    assert simulated.calls["anthropic"] == 2

"""Client matrix: litellm as a client (its OpenAI and Gemini providers) and instructor (over
the openai SDK), each with its default retries."""

from __future__ import annotations

import instructor
import litellm
import openai
import pytest
from clients.conftest import ACME, BROKE, Matrix
from fakes.openai_upstream import Reply
from pydantic import BaseModel

# litellm's own extras (callbacks, a price-map fetch) stay off: only its client is tested.
litellm.telemetry = False


class City(BaseModel):
    name: str
    country: str


async def test_litellm_openai_chat_and_stream(matrix: Matrix) -> None:
    reply = await litellm.acompletion(
        model="openai/gpt-4o-mini",
        api_base=matrix.openai_url,
        api_key=ACME,
        messages=[{"role": "user", "content": "Hello!"}],
    )
    assert reply.choices[0].message.content
    stream = await litellm.acompletion(
        model="openai/gpt-4o-mini",
        api_base=matrix.openai_url,
        api_key=ACME,
        messages=[{"role": "user", "content": "Hello!"}],
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text.startswith("Hello!")
    matrix.seen.assert_ids()


async def test_litellm_embeddings(matrix: Matrix) -> None:
    result = await litellm.aembedding(
        model="openai/text-embedding-3-small",
        api_base=matrix.openai_url,
        api_key=ACME,
        input=["a", "b"],
    )
    assert len(result.data) == 2


async def test_litellm_gemini_provider(matrix: Matrix) -> None:
    reply = await litellm.acompletion(
        model="gemini/gemini-2.5-flash",
        api_base=matrix.url + "/v1beta",
        api_key=ACME,
        messages=[{"role": "user", "content": "Hello!"}],
    )
    assert reply.choices[0].message.content == "Hello from the fake Gemini."
    matrix.seen.assert_ids()


async def test_litellm_budget_stop_is_one_request(matrix: Matrix) -> None:
    with pytest.raises(litellm.exceptions.RateLimitError) as info:
        await litellm.acompletion(
            model="openai/gpt-4o-mini",
            api_base=matrix.openai_url,
            api_key=BROKE,
            messages=[{"role": "user", "content": "Hello!"}],
        )
    assert "budget stop" in str(info.value)
    assert len(matrix.seen.answers) == 1
    matrix.seen.assert_ids()


async def test_instructor_structured_output(matrix: Matrix) -> None:
    matrix.openai.fake.enqueue(
        Reply(
            text=None,
            tool_calls=[{"name": "City", "arguments": '{"name": "Oslo", "country": "Norway"}'}],
        )
    )
    async with openai.AsyncOpenAI(base_url=matrix.openai_url, api_key=ACME) as client:
        patched = instructor.from_openai(client)
        city = await patched.chat.completions.create(
            model="gpt-4o-mini",
            response_model=City,
            messages=[{"role": "user", "content": "A city"}],
        )
    assert city.model_dump() == {"name": "Oslo", "country": "Norway"}
    matrix.seen.assert_ids()


async def test_instructor_budget_stop_is_one_request(matrix: Matrix) -> None:
    async with openai.AsyncOpenAI(base_url=matrix.openai_url, api_key=BROKE) as client:
        patched = instructor.from_openai(client)
        with pytest.raises(Exception) as info:  # noqa: PT011 - instructor wraps it its way
            await patched.chat.completions.create(
                model="gpt-4o-mini",
                response_model=City,
                max_retries=3,  # instructor's own retries, on top of the SDK's
                messages=[{"role": "user", "content": "A city"}],
            )
    assert "budget stop" in str(info.value)
    assert len(matrix.seen.answers) == 1
    matrix.seen.assert_ids()

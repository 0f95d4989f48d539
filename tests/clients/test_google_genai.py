"""Client matrix: google-genai (the SDK's own /v1 default) against the proxy."""

from __future__ import annotations

import json

import aiohttp
import pytest
from clients.conftest import ACME, BROKE, SLOW, Matrix
from fakes.gemini_upstream import Reply
from google import genai
from google.genai import errors, types


def _client(
    matrix: Matrix, key: str = ACME, retry: types.HttpRetryOptions | None = None
) -> genai.Client:
    options = types.HttpOptions(base_url=matrix.url, retry_options=retry)
    return genai.Client(api_key=key, http_options=options)


async def test_generate(matrix: Matrix) -> None:
    reply = await _client(matrix).aio.models.generate_content(
        model="gemini-2.5-flash", contents="Hello!"
    )
    assert reply.text == "Hello from the fake Gemini."
    assert reply.sdk_http_response is not None
    headers = reply.sdk_http_response.headers or {}
    assert headers.get("x-aegis-receipt-id")
    matrix.seen.assert_ids()


async def test_generate_stream(matrix: Matrix) -> None:
    chunks = await _client(matrix).aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Hello!"
    )
    text = "".join([c.text or "" async for c in chunks])
    assert text == "Hello from the fake Gemini."
    matrix.seen.assert_ids()


async def test_stream_without_alt_sse_is_one_json_array(matrix: Matrix) -> None:
    # google-genai always asks for SSE; REST clients that do not get Google's JSON array.
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello!"}]}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            matrix.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            json=body,
            headers={"x-goog-api-key": ACME},
        ) as response,
    ):
        assert response.status == 200
        assert response.content_type == "application/json"
        chunks = json.loads(await response.read())
    assert isinstance(chunks, list)
    assert len(chunks) == 3
    text = "".join(p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"])
    assert text == "Hello from the fake Gemini."
    assert matrix.gemini.fake.requests[-1].query == {"alt": "sse"}  # read as SSE upstream
    assert matrix.receipts[-1].usage_source == "reported"


async def test_count_tokens_is_free(matrix: Matrix) -> None:
    counted = await _client(matrix).aio.models.count_tokens(
        model="gemini-2.5-flash", contents="one two three"
    )
    assert counted.total_tokens == 3
    assert (matrix.receipts[-1].status, matrix.receipts[-1].actual_usd) == ("ok", "0")
    matrix.seen.assert_ids()


async def test_models_list_and_get(matrix: Matrix) -> None:
    client = _client(matrix)
    names = [m.name async for m in await client.aio.models.list()]
    assert "models/gemini-2.5-flash" in names
    assert "models/gpt-4o-mini" not in names  # Google's list holds Google's models
    model = await client.aio.models.get(model="gemini-2.5-flash")
    assert model.output_token_limit == 65_536
    assert model.supported_actions is not None
    assert "generateContent" in model.supported_actions
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.get(model="gemini-9-ultra")
    assert info.value.code == 404
    matrix.seen.assert_ids(receipts=False)


async def test_embed(matrix: Matrix) -> None:
    result = await _client(matrix).aio.models.embed_content(
        model="gemini-embedding-001", contents=["a", "b"]
    )
    assert result.embeddings is not None
    assert len(result.embeddings) == 2


async def test_budget_stop_is_final_even_with_retries_on(matrix: Matrix) -> None:
    # With retry options google-genai retries 408, 429 and 5xx whatever the headers say.
    client = _client(matrix, BROKE, retry=types.HttpRetryOptions(attempts=5))
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Hello!")
    assert (info.value.code, info.value.status) == (400, "FAILED_PRECONDITION")
    assert "budget stop" in (info.value.message or "")
    assert len(matrix.seen.answers) == 1
    matrix.seen.assert_ids()
    assert matrix.gemini.fake.requests == []


async def test_rate_limit_stays_retryable(matrix: Matrix) -> None:
    client = _client(matrix, SLOW)
    await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Hello!")
    with pytest.raises(errors.ClientError) as info:
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents="Hello!")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert matrix.seen.answers[-1].headers.get("retry-after")
    matrix.seen.assert_ids()


async def test_answer_without_usage_is_billed_as_counted(matrix: Matrix) -> None:
    matrix.gemini.fake.script(Reply(text="Two words.", usage=False))
    await _client(matrix).aio.models.generate_content(model="gemini-2.5-pro", contents="Hi")
    receipt = matrix.receipts[-1]
    assert receipt.usage_source == "counted"
    assert float(receipt.actual_usd) < 0.001 < float(receipt.estimated_usd)

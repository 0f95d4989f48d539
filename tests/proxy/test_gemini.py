"""Gemini through the proxy: the google-genai SDK unchanged, and OpenAI clients served by Gemini."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import openai
import pytest
from fakes.gemini_upstream import FakeGeminiServer, Reply
from fakes.openai_upstream import FakeUpstream, Fault
from fakes.proxy_harness import KEY, UPSTREAM_SECRET, Proxy, make_settings
from google import genai
from google.genai import errors as genai_errors, types

from aegis.core import MemoryReceiptSink, parse_usd
from aegis.proxy import GATE, Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
FLASH = (300, 30, 2500)  # gemini-2.5-flash nano-USD per token: input, cached, output


def receipts(proxy: Proxy) -> MemoryReceiptSink:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink


def genai_client(proxy: Proxy, key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=proxy.url))


async def test_google_genai_generate_through_the_proxy(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    gemini_upstream.fake.script(
        Reply(
            text="Bonjour le monde",
            prompt_tokens=40,
            cached_tokens=10,
            candidates_tokens=3,
            thoughts_tokens=20,
        )
    )
    client = genai_client(proxy)
    response = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="Say hello in French",
        config=types.GenerateContentConfig(max_output_tokens=100),
    )
    assert response.text == "Bonjour le monde"
    (seen,) = gemini_upstream.fake.requests
    assert seen.api_key == UPSTREAM_SECRET  # the provider key, never the virtual one
    assert seen.body["generationConfig"]["maxOutputTokens"] <= 100
    (receipt,) = receipts(proxy).receipts
    # Thinking bills as output; cache hits at the cached price.
    assert parse_usd(receipt.actual_usd) == 30 * FLASH[0] + 10 * FLASH[1] + 23 * FLASH[2]
    assert receipt.usage is not None
    assert receipt.usage.reasoning_tokens == 20


async def test_google_genai_stream_and_embeddings(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    client = genai_client(proxy)
    gemini_upstream.fake.script(Reply(text="one two three four five six", chunks=3))
    pieces = [
        c.text
        async for c in await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="count"
        )
    ]
    assert "".join(p or "" for p in pieces) == "one two three four five six"
    embedded = await client.aio.models.embed_content(
        model="gemini-embedding-001", contents="embed these words"
    )
    assert embedded.embeddings
    stream_receipt, embed_receipt = receipts(proxy).receipts
    assert (stream_receipt.capability, stream_receipt.status) == ("llm:stream", "ok")
    assert stream_receipt.usage_source == "reported"
    assert embed_receipt.capability == "embeddings:create"


async def test_gemini_budget_denial_reaches_the_sdk_before_any_upstream_call(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    settings = make_settings(
        tmp_path, openai_upstream, gemini=gemini_upstream, budgets={"per_run_usd": "0.0001"}
    )
    proxy = await start_proxy(settings)
    with pytest.raises(genai_errors.ClientError) as info:
        await genai_client(proxy).aio.models.generate_content(
            model="gemini-2.5-pro", contents="write a novel"
        )
    # Google's error shape on Google's routes, and a status Google's clients never retry.
    assert info.value.code == 400
    assert info.value.status == "FAILED_PRECONDITION"
    assert "budget stop" in (info.value.message or "")
    assert gemini_upstream.fake.requests == []


async def test_openai_client_served_by_gemini(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    gemini_upstream.fake.script(Reply(text="Hi from Gemini"), Reply(text="streamed reply here"))
    client = proxy.client()
    completion = await client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "Hi from Gemini"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    first = gemini_upstream.fake.requests[0].body
    assert first["systemInstruction"]["parts"][0]["text"] == "be brief"
    stream = await client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed reply here"
    assert chunks[-1].usage is not None
    assert [r.provider for r in receipts(proxy).receipts] == ["gemini", "gemini"]


async def test_fallback_from_failing_openai_to_gemini(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    settings = make_settings(
        tmp_path,
        openai_upstream,
        gemini=gemini_upstream,
        routing={
            "primary_provider": "openai",
            "fallback_providers": ["gemini"],
            "fallback_models": {"gpt-4o-mini": "gemini-2.5-flash"},
        },
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(Fault(503, "overloaded"))
    gemini_upstream.fake.script(Reply(text="Gemini to the rescue"))
    completion = await proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "help"}], max_tokens=30
    )
    assert completion.choices[0].message.content == "Gemini to the rescue"
    failed, served = receipts(proxy).receipts
    assert (failed.provider, failed.status, failed.upstream_status) == (
        "openai",
        "upstream_error",
        503,
    )
    assert (served.provider, served.model, served.status) == ("gemini", "gemini-2.5-flash", "ok")


async def test_untranslatable_requests_are_rejected_naming_the_field(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    with pytest.raises(openai.BadRequestError) as info:
        await proxy.client().chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "hi"}],
            logit_bias={"50256": -100},
        )
    assert info.value.param == "logit_bias"
    assert gemini_upstream.fake.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "..%2F..%2Fadmin:generateContent",
        "%2E%2E:generateContent",
        "gemini 2.5:generateContent",
        "a" * 300 + ":generateContent",
    ],
)
async def test_a_model_name_cannot_walk_the_upstream_path(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
    target: str,
) -> None:
    import aiohttp

    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{proxy.url}/v1beta/models/{target}",
            json={"contents": []},
            headers={"x-goog-api-key": KEY},
        ) as response,
    ):
        assert 400 <= response.status < 500
        assert (await response.json())["error"]["message"]
    assert gemini_upstream.fake.requests == []

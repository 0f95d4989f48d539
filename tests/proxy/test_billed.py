"""Billed dimensions through the proxy, with the real SDKs against the local fakes: Gemini
embeddings charged the answer's count, a priority call reserved and charged at the priority
price, a web search charged its fee, Gemini grounding, a retired model refused, and the hard
limit holding in real dollars with these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from fakes.gemini_upstream import FakeGeminiServer, Reply as GeminiReply
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.proxy_harness import KEY, Proxy, make_settings
from google import genai
from google.genai import errors as genai_errors, types

from aegis.core import MemoryReceiptSink, parse_usd
from aegis.proxy import GATE, Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
D = Decimal
M = D(1_000_000)


def nanos(usd: Decimal) -> int:
    return int((usd * 10**9).to_integral_value(rounding=ROUND_CEILING))


def receipts(proxy: Proxy) -> MemoryReceiptSink:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink


def genai_client(proxy: Proxy) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=proxy.url))


async def test_gemini_embeddings_are_charged_the_answers_token_count(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    # Ten texts of 2,000 characters: the byte bound is over 20,000 tokens.
    texts = [("lorem ipsum dolor sit amet " * 80)[:2_000] for _ in range(10)]
    embedded = await genai_client(proxy).aio.models.embed_content(
        model="gemini-embedding-001", contents=texts
    )
    assert embedded.usage_metadata is not None
    count = embedded.usage_metadata.prompt_token_count
    assert count is not None
    (receipt,) = receipts(proxy).receipts
    assert receipt.usage_source == "reported"
    assert receipt.usage is not None
    assert receipt.usage.input_tokens == count
    assert parse_usd(receipt.actual_usd) == nanos(D(count) * D("0.15") / M)
    # The reservation was the byte bound; the charge is a fraction of it.
    assert parse_usd(receipt.reserved_usd) > 4 * parse_usd(receipt.actual_usd)


async def test_a_priority_call_is_reserved_and_charged_at_the_priority_price(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    openai_upstream.fake.enqueue(
        Reply(text="fast answer", prompt_tokens=1_000, completion_tokens=200)
    )
    completion = await proxy.client().chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "hurry"}],
        max_completion_tokens=500,
        service_tier="priority",
    )
    assert completion.service_tier == "priority"
    (receipt,) = receipts(proxy).receipts
    assert receipt.usage is not None
    assert receipt.usage.service_tier == "priority"
    # gpt-4.1 priority: $3.50 input, $14 output
    assert parse_usd(receipt.actual_usd) == nanos((D(1_000) * D("3.5") + D(200) * D(14)) / M)
    assert receipt.bound is not None
    bound = receipt.bound
    assert bound.terms.service_tier == "priority"
    assert parse_usd(receipt.reserved_usd) == nanos(
        (D(bound.input_tokens) * D("3.5") + D(bound.output_tokens) * D(14)) / M
    )


async def test_a_web_search_call_is_charged_its_fee(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    openai_upstream.fake.enqueue(
        Reply(text="found it", prompt_tokens=3_000, completion_tokens=400, web_searches=2)
    )
    response = await proxy.client().responses.create(
        model="o3", input="what happened today?", tools=[{"type": "web_search"}]
    )
    assert [item.type for item in response.output][:2] == ["web_search_call", "web_search_call"]
    (receipt,) = receipts(proxy).receipts
    assert receipt.usage is not None
    assert receipt.usage.tool_calls == (("web_search", 2),)
    # o3: $2 input, $8 output, web search $10 per 1k calls
    expected = (D(3_000) * D(2) + D(400) * D(8)) / M + D(2) * D(10) / 1_000
    assert parse_usd(receipt.actual_usd) == nanos(expected)
    # The reservation held the fee of every search the request allowed.
    assert receipt.bound is not None
    assert receipt.bound.terms.tool_calls == (("web_search", 8),)


async def test_a_web_search_stream_is_charged_its_fee(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    openai_upstream.fake.enqueue(
        Reply(text="found it", prompt_tokens=100, completion_tokens=10, web_searches=3)
    )
    stream = await proxy.client().responses.create(
        model="gpt-4.1",
        input="news?",
        tools=[{"type": "web_search_preview"}],
        max_tool_calls=3,
        stream=True,
    )
    kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.completed"
    (receipt,) = receipts(proxy).receipts
    # gpt-4.1: $2 / $8, and $25 per 1k for its (preview) web search
    expected = (D(100) * D(2) + D(10) * D(8)) / M + D(3) * D(25) / 1_000
    assert parse_usd(receipt.actual_usd) == nanos(expected)


async def test_gemini_grounding_is_charged_per_grounded_prompt(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    gemini_upstream.fake.script(
        GeminiReply(
            text="Spain",
            prompt_tokens=20,
            tool_use_prompt_tokens=800,
            candidates_tokens=5,
            grounding_queries=["euro 2024 winner", "euro 2024 final"],
        )
    )
    response = await genai_client(proxy).aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="Who won Euro 2024?",
        config=types.GenerateContentConfig(
            tools=[types.Tool(google_search=types.GoogleSearch())], max_output_tokens=200
        ),
    )
    assert response.candidates
    (receipt,) = receipts(proxy).receipts
    assert receipt.usage is not None
    assert dict(receipt.usage.tool_calls) == {"grounding": 1, "web_search": 2}
    # 2.5 Flash: $0.30 input (search results included), $2.50 output, $35 per 1k prompts
    expected = (D(820) * D("0.30") + D(5) * D("2.50")) / M + D(35) / 1_000
    assert parse_usd(receipt.actual_usd) == nanos(expected)


async def test_a_retired_model_is_refused_with_its_successor(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    with pytest.raises(genai_errors.ClientError) as info:
        await genai_client(proxy).aio.models.generate_content(
            model="gemini-2.0-flash", contents="hi"
        )
    assert info.value.code == 403
    assert "gemini-2.5-flash" in (info.value.message or "")
    assert gemini_upstream.fake.requests == []


async def test_the_hard_limit_holds_in_real_dollars_with_priority_and_search(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    settings = make_settings(
        tmp_path,
        openai_upstream,
        budgets={"per_window": {"window": "day", "limit_usd": "0.5"}},
        # Search results are input the request does not show: bounded by the policy, not by
        # gpt-4.1's whole 1M window (which alone would cost $3.50 at priority).
        model={"unseen_input_tokens": 20_000},
    )
    proxy = await start_proxy(settings)
    client = proxy.client()
    denied = 0
    for i in range(40):
        openai_upstream.fake.enqueue(
            Reply(text="ok", prompt_tokens=2_000, completion_tokens=300, web_searches=4)
        )
        try:
            await client.responses.create(
                model="gpt-4.1",
                input=f"call {i}",
                tools=[{"type": "web_search"}],
                max_tool_calls=4,
                max_output_tokens=1_000,
                service_tier="priority",
            )
        except openai.RateLimitError:
            denied += 1
    assert 0 < denied < 40
    spent = sum(parse_usd(r.actual_usd) for r in receipts(proxy).receipts)
    # Each call: 4 searches at $25 per 1k plus priority tokens ($3.50 / $14).
    per_call = nanos(D(4) * D(25) / 1_000 + (D(2_000) * D("3.5") + D(300) * D(14)) / M)
    assert spent == per_call * (40 - denied)
    assert spent <= parse_usd("0.5")


async def test_retired_models_are_not_offered(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, gemini=gemini_upstream))
    ids = {m.id async for m in proxy.client().models.list()}
    assert "gemini-2.5-flash" in ids
    assert "gemini-2.0-flash" not in ids
    assert "chatgpt-4o-latest" not in ids


async def test_the_policys_default_output_bound_is_sent_and_reserved(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    model = {"default_max_output_tokens": {"gpt-4o-mini": 256, "gpt-4o*": 512}}
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, model=model))
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    client = proxy.client()
    await client.chat.completions.create(model="gpt-4o-mini", messages=hi)  # first pattern
    await client.chat.completions.create(model="gpt-4o", messages=hi)  # the second
    await client.chat.completions.create(model="gpt-4o", messages=hi, max_tokens=100)

    sent = [
        body.get("max_completion_tokens", body.get("max_tokens"))
        for body in openai_upstream.fake.bodies
    ]
    assert sent == [256, 512, 100]  # a request's own bound wins
    bounds = [r.bound for r in receipts(proxy).receipts]
    assert [b.output_tokens for b in bounds if b is not None] == [256, 512, 100]
    # gpt-4o-mini: $0.15 input, $0.60 output per million tokens.
    first = receipts(proxy).receipts[0]
    assert first.bound is not None
    assert parse_usd(first.reserved_usd) == nanos(
        (D(first.bound.input_tokens) * D("0.15") + D(256) * D("0.6")) / M
    )

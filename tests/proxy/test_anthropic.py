"""Anthropic through the proxy: the anthropic SDK unchanged on ``/v1/messages``, and OpenAI
clients served by Claude (fallback across all three providers included)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolParam
from fakes.anthropic_upstream import FakeAnthropicServer, Fault, Reply, prompt_tokens
from fakes.gemini_upstream import FakeGeminiServer, Reply as GeminiReply
from fakes.openai_upstream import FakeUpstream, Fault as OpenAIFault
from fakes.proxy_harness import (
    KEY,
    UPSTREAM_SECRET,
    Proxy,
    make_settings,
    readme_commands,
    run_json_command,
)
from openai.types.chat import ChatCompletionMessageFunctionToolCall, ChatCompletionMessageParam

from aegis.core import MemoryReceiptSink, parse_usd
from aegis.proxy import (
    GATE,
    ObservabilitySettings,
    Settings,
    hash_key,
    parse_settings,
    settings_from_env,
)

ROOT = Path(__file__).resolve().parents[2]
StartProxy = Callable[[Settings], Awaitable[Proxy]]
HAIKU = "claude-haiku-4-5"
METRICS_KEY = "aegis-sk-metrics-scraper-0123456789"
HAIKU_NANOS = (1000, 100, 1250, 5000)  # per token: input, cache read, 5-minute write, output
HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def receipts(proxy: Proxy) -> MemoryReceiptSink:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink


def claude(proxy: Proxy, key: str = KEY, max_retries: int = 2) -> AsyncAnthropic:
    """The real anthropic SDK pointed at the proxy (as ``ANTHROPIC_BASE_URL`` would)."""
    return AsyncAnthropic(base_url=proxy.url, api_key=key, max_retries=max_retries)


def error_of(exc: anthropic.APIStatusError) -> dict[str, Any]:
    """The ``error`` object of an Anthropic error body."""
    body = exc.body
    assert isinstance(body, dict)
    error = body["error"]
    assert isinstance(error, dict)
    return error


ProxyFor = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def proxy(proxy_for: ProxyFor) -> Proxy:
    return await proxy_for()


@pytest.fixture
def proxy_for(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    anthropic_upstream: FakeAnthropicServer,
    start_proxy: StartProxy,
) -> ProxyFor:
    """``await proxy_for(**policy)``: the proxy in front of the fakes, tenant acme's policy
    given."""

    async def start(**policy: Any) -> Proxy:
        settings = make_settings(tmp_path, openai_upstream, anthropic=anthropic_upstream, **policy)
        scraper = ObservabilitySettings(metrics_keys=(hash_key(METRICS_KEY),))
        return await start_proxy(replace(settings, observability=scraper))

    return start


async def test_messages_create_through_the_proxy(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    anthropic_upstream.fake.enqueue(
        Reply(text="Bonjour le monde", input_tokens=30, cache_read_tokens=10, output_tokens=3)
    )
    async with claude(proxy) as client:
        message = await client.messages.create(
            model=HAIKU,
            max_tokens=100,
            system="Be brief.",
            messages=[{"role": "user", "content": "Say hello in French"}],
        )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Bonjour le monde"
    (seen,) = anthropic_upstream.fake.requests
    assert seen.headers["x-api-key"] == UPSTREAM_SECRET  # the provider key, never the virtual one
    assert seen.headers["anthropic-version"]
    assert seen.body["max_tokens"] == 100
    (receipt,) = receipts(proxy).receipts
    assert (receipt.provider, receipt.model, receipt.status) == ("anthropic", HAIKU, "ok")
    assert receipt.usage_source == "reported"
    # Cache reads are billed at the cached price, inside the input Aegis counts.
    assert parse_usd(receipt.actual_usd) == 30 * HAIKU_NANOS[0] + 10 * HAIKU_NANOS[1] + 3 * 5000
    assert receipt.usage is not None
    assert receipt.usage.input_tokens == 40
    # The operator's metrics name the provider and the model like any other.
    scraper = {"Authorization": f"Bearer {METRICS_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(proxy.url + "/metrics", headers=scraper) as response,
    ):
        scrape = await response.text()
    assert 'provider="anthropic"' in scrape
    assert f'model="{HAIKU}"' in scrape


async def test_messages_stream_passes_anthropic_events_through(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    anthropic_upstream.fake.enqueue(Reply(text="one two three four"))
    async with claude(proxy) as client:
        kinds = []
        async with client.messages.stream(
            model=HAIKU, max_tokens=50, messages=[{"role": "user", "content": "count"}]
        ) as stream:
            async for event in stream:
                kinds.append(event.type)
            final = await stream.get_final_message()
    assert "".join(b.text for b in final.content if b.type == "text") == "one two three four"
    assert kinds[0] == "message_start"
    assert "content_block_delta" in kinds
    assert kinds[-1] == "message_stop"
    (receipt,) = receipts(proxy).receipts
    assert (receipt.capability, receipt.status, receipt.usage_source) == (
        "llm:stream",
        "ok",
        "reported",
    )
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == 4  # message_delta's cumulative count
    assert receipt.usage.input_tokens == prompt_tokens(anthropic_upstream.fake.last_body)


async def test_tools_round_trip(proxy: Proxy, anthropic_upstream: FakeAnthropicServer) -> None:
    anthropic_upstream.fake.enqueue(
        Reply(
            text=None,
            tool_uses=[{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        )
    )
    async with claude(proxy) as client:
        message = await client.messages.create(
            model=HAIKU,
            max_tokens=200,
            tools=[WEATHER],
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
    assert anthropic_upstream.fake.last_body["tools"] == [WEATHER]


async def test_count_tokens_is_free_but_receipted(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    async with claude(proxy) as client:
        counted = await client.messages.count_tokens(
            model=HAIKU, messages=[{"role": "user", "content": "how many tokens is this"}]
        )
    assert counted.input_tokens == 5 + 3
    (receipt,) = receipts(proxy).receipts
    assert (receipt.status, receipt.model) == ("ok", HAIKU)
    assert parse_usd(receipt.actual_usd) == 0
    assert parse_usd(receipt.reserved_usd) == 0
    assert anthropic_upstream.fake.requests[0].path == "/v1/messages/count_tokens"


async def test_errors_surface_as_the_sdks_own_exceptions(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    anthropic_upstream.fake.enqueue(Fault.of("invalid_request_error", "messages: bad"))
    async with claude(proxy, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as bad:
            await client.messages.create(model=HAIKU, max_tokens=10, messages=HI)
        assert error_of(bad.value)["type"] == "invalid_request_error"
        anthropic_upstream.fake.enqueue(Fault.overloaded())
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model=HAIKU, max_tokens=10, messages=HI)
        # The proxy's own refusals are in Anthropic's shape too.
        with pytest.raises(anthropic.BadRequestError) as missing:
            await client.messages.create(
                model=HAIKU, max_tokens=10, messages=HI, extra_body={"max_tokens": 1.5}
            )
        assert error_of(missing.value)["message"].startswith("max_tokens")
    async with claude(proxy, key="aegis-sk-wrong", max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=HAIKU, max_tokens=10, messages=HI)
    statuses = [r.upstream_status for r in receipts(proxy).receipts]
    assert statuses == [400, 529]


async def drain(client: AsyncAnthropic) -> None:
    async with client.messages.stream(model=HAIKU, max_tokens=50, messages=HI) as stream:
        async for _ in stream:
            pass


async def test_a_stream_that_fails_mid_way_raises_in_the_sdk(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    anthropic_upstream.fake.enqueue(Reply(text="a b c d e f", error_after=4))
    async with claude(proxy, max_retries=0) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await drain(client)
    assert "overloaded_error" in str(info.value)
    (receipt,) = receipts(proxy).receipts
    # Without its final usage the bill is unknown: the reservation, its upper bound, is charged.
    assert (receipt.status, receipt.usage_source) == ("upstream_error", "reservation")
    assert parse_usd(receipt.actual_usd) == parse_usd(receipt.reserved_usd)


async def test_a_budget_stop_is_a_429_the_sdk_does_not_retry(
    proxy_for: ProxyFor, anthropic_upstream: FakeAnthropicServer
) -> None:
    proxy = await proxy_for(budgets={"per_run_usd": "0.0001"})
    async with claude(proxy, max_retries=3) as client:
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(
                model=HAIKU,
                max_tokens=4000,
                messages=[{"role": "user", "content": "write a novel"}],
                extra_headers={"x-run-id": "run-1"},
            )
    error = info.value
    assert error_of(error)["type"] == "rate_limit_error"
    assert "run" in error_of(error)["message"]  # names the budget
    assert error.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in error.response.headers  # a run budget never resets
    assert anthropic_upstream.fake.requests == []
    # One refusal, one receipt: the SDK sent the call once despite max_retries=3.
    assert [r.status for r in receipts(proxy).receipts] == ["denied"]


async def test_the_virtual_key_in_x_api_key_or_bearer(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    body = {"model": HAIKU, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        for headers in (
            {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
            {"Authorization": f"Bearer {KEY}"},
        ):
            async with http.post(proxy.url + "/v1/messages", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["type"] == "message"
        async with http.post(proxy.url + "/v1/messages", json=body) as r:
            assert r.status == 401
            assert (await r.json())["error"]["type"] == "authentication_error"
    # The client's anthropic-version reaches the upstream, and the default when it sent none.
    assert [r.headers["anthropic-version"] for r in anthropic_upstream.fake.requests] == [
        "2023-06-01",
        "2023-06-01",
    ]


async def test_openai_client_served_by_claude(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    anthropic_upstream.fake.enqueue(
        Reply(text="Hi from Claude"),
        Reply(text="streamed reply here"),
        Reply(text=None, tool_uses=[{"id": "toolu_9", "name": "lookup", "input": {"q": "x"}}]),
    )
    client = proxy.client()
    completion = await client.chat.completions.create(
        model=HAIKU,
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert completion.choices[0].message.content == "Hi from Claude"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3
    first = anthropic_upstream.fake.requests[0].body
    assert first["system"] == [{"type": "text", "text": "be brief"}]
    assert first["max_tokens"] == 50
    pieces, finishes, usages = [], [], []
    async for chunk in await client.chat.completions.create(
        model=HAIKU,
        messages=[{"role": "user", "content": "stream"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finishes.append(choice.finish_reason)
        usages.append(chunk.usage)
    assert "".join(pieces) == "streamed reply here"
    assert finishes[-1] == "stop"
    last_usage = usages[-1]  # the usage chunk ends the stream
    assert last_usage is not None
    assert last_usage.completion_tokens == 3
    # Without max_tokens the model's own output limit goes upstream (Anthropic requires one).
    assert anthropic_upstream.fake.requests[1].body["max_tokens"] == 64_000
    called = await client.chat.completions.create(
        model=HAIKU,
        messages=[{"role": "user", "content": "look it up"}],
        tools=[
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
        ],
        max_tokens=100,
    )
    (call,) = called.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id == "toolu_9"
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"q": "x"}
    assert called.choices[0].finish_reason == "tool_calls"
    assert [r.provider for r in receipts(proxy).receipts] == ["anthropic"] * 3


async def test_an_openai_stream_served_by_claude_streams_tool_calls(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    anthropic_upstream.fake.enqueue(
        Reply(
            text="Let me check.",
            tool_uses=[{"id": "toolu_2", "name": "lookup", "input": {"q": "yes"}}],
        )
    )
    stream = await proxy.client().chat.completions.create(
        model=HAIKU,
        messages=[{"role": "user", "content": "look it up"}],
        tools=[{"type": "function", "function": {"name": "lookup"}}],
        max_tokens=100,
        stream=True,
    )
    chunks = [c async for c in stream]
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "toolu_2"
    assert deltas[0].function is not None
    assert deltas[0].function.name == "lookup"
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert json.loads(arguments) == {"q": "yes"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_untranslatable_requests_are_rejected_naming_the_field(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await proxy.client().chat.completions.create(
            model=HAIKU, messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert info.value.param == "n"
    assert anthropic_upstream.fake.requests == []


THREE_WAY = {
    "primary_provider": "openai",
    "fallback_providers": ["anthropic", "gemini"],
    # Each fallback gets a model of its own kind: followed from one name to the next.
    "fallback_models": {"gpt-4o-mini": HAIKU, HAIKU: "gemini-2.5-flash"},
}


async def test_fallback_across_all_three_providers(
    start_proxy: StartProxy,
    tmp_path: Path,
    gemini_upstream: FakeGeminiServer,
    anthropic_upstream: FakeAnthropicServer,
    openai_upstream: FakeUpstream,
) -> None:
    settings = make_settings(
        tmp_path,
        openai_upstream,
        None,
        gemini_upstream,
        anthropic=anthropic_upstream,
        routing=THREE_WAY,
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(OpenAIFault(503, "overloaded"), OpenAIFault(503, "overloaded"))
    anthropic_upstream.fake.enqueue(Fault.overloaded(), Reply(text="Claude to the rescue"))
    gemini_upstream.fake.script(GeminiReply(text="Gemini to the rescue"))
    client = proxy.client()
    message: list[ChatCompletionMessageParam] = [{"role": "user", "content": "help"}]
    # OpenAI fails, then Claude fails too: Gemini answers.
    first = await client.chat.completions.create(
        model="gpt-4o-mini", messages=message, max_tokens=30
    )
    assert first.choices[0].message.content == "Gemini to the rescue"
    second = await client.chat.completions.create(
        model="gpt-4o-mini", messages=message, max_tokens=30
    )
    assert second.choices[0].message.content == "Claude to the rescue"
    got = [(r.provider, r.status, r.upstream_status) for r in receipts(proxy).receipts]
    assert got == [
        ("openai", "upstream_error", 503),
        ("anthropic", "upstream_error", 529),
        ("gemini", "ok", 200),
        ("openai", "upstream_error", 503),
        ("anthropic", "ok", 200),
    ]


async def test_the_readme_curl_examples_work(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    readme = ROOT / "packages/aegis-proxy/README.md"
    message, counted = [
        await run_json_command(c.replace("http://localhost:8787", proxy.url), {"AEGIS_KEY": KEY})
        for c in readme_commands(readme, "readme-anthropic")
    ]
    assert message["type"] == "message"
    assert message["content"][0]["text"]
    assert counted["input_tokens"] > 0
    assert [r.capability for r in receipts(proxy).receipts] == ["llm:invoke", "llm:invoke"]


async def test_a_stream_past_the_reserved_output_is_ended_cleanly(
    proxy: Proxy, anthropic_upstream: FakeAnthropicServer
) -> None:
    # An upstream that ignores max_tokens: the proxy ends the message at the limit.
    words = " ".join(f"w{i}" for i in range(40))
    anthropic_upstream.fake.enqueue(Reply(text=words, ignore_max_tokens=True))
    client = claude(proxy)
    async with client, client.messages.stream(model=HAIKU, max_tokens=10, messages=HI) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert kinds[-1] == "message_stop"
    (receipt,) = receipts(proxy).receipts
    assert receipt.status == "ok"
    assert receipt.usage_source == "counted"
    assert receipt.error is not None
    assert "limit" in receipt.error


async def test_a_clamped_budget_lowers_max_tokens_upstream(
    proxy_for: ProxyFor, anthropic_upstream: FakeAnthropicServer
) -> None:
    proxy = await proxy_for(budgets={"per_run_usd": "0.005"}, clamp_max_tokens=True)
    async with claude(proxy) as client:
        await client.messages.create(model=HAIKU, max_tokens=4000, messages=HI)
    sent = anthropic_upstream.fake.last_body["max_tokens"]
    assert 0 < sent < 4000
    (receipt,) = receipts(proxy).receipts
    assert parse_usd(receipt.reserved_usd) <= parse_usd("0.005")


def test_an_anthropic_provider_in_the_config_and_the_environment() -> None:
    settings = parse_settings({"providers": {"claude": {"type": "anthropic"}}})
    claude = settings.providers["claude"]
    assert (claude.base_url, claude.api_key_env) == (
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
    )
    env = {"ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"}
    from_env = settings_from_env(env).providers
    assert list(from_env) == ["anthropic"]
    assert from_env["anthropic"].base_url == "http://127.0.0.1:9"
    assert settings_from_env(env).default_provider == "anthropic"


async def test_a_rate_limit_is_a_429_the_sdk_may_retry(proxy_for: ProxyFor) -> None:
    proxy = await proxy_for(limits=[{"model": "claude-*", "rpm": 1}])
    async with claude(proxy, max_retries=0) as client:
        await client.messages.create(model=HAIKU, max_tokens=10, messages=HI)
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(model=HAIKU, max_tokens=10, messages=HI)
    headers = info.value.response.headers
    assert int(headers["retry-after"]) > 0  # a wait passes it, unlike a spent budget
    assert "x-should-retry" not in headers
    assert error_of(info.value)["type"] == "rate_limit_error"


async def test_web_searches_reserve_their_fee(proxy: Proxy) -> None:
    async with claude(proxy) as client:
        for uses in (2, 5):
            await client.messages.create(
                model=HAIKU,
                max_tokens=10,
                messages=HI,
                tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": uses}],
            )
    reserved = [parse_usd(r.reserved_usd) for r in receipts(proxy).receipts]
    assert reserved[1] - reserved[0] == 3 * 10_000_000  # $10 per 1,000 searches

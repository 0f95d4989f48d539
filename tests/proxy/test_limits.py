"""Rate limits through the proxy with the real SDK: exact, retryable, freed, and in headers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from fakes.openai_upstream import FakeUpstream, Fault, Reply
from fakes.proxy_harness import Proxy, make_settings

from aegis.core import MemoryReceiptSink, Receipt
from aegis.proxy import GATE, Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
MESSAGES: Any = [{"role": "user", "content": "hello there"}]


async def clear_of_a_minute_end() -> None:
    # Per-minute limits reset on the minute: a burst that straddled one would see two windows.
    into = time.time() % 60
    if into > 50:
        await asyncio.sleep(60.5 - into)


def receipts(proxy: Proxy) -> list[Receipt]:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink.receipts


async def outcome(client: openai.AsyncOpenAI, **extra: Any) -> str:
    try:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, **extra
        )
    except openai.RateLimitError as exc:
        return f"429:{exc.code}"
    return "ok"


async def test_rpm_admits_exactly_the_limit_of_concurrent_requests(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, receipts="memory", limits=[{"rpm": 5}])
    )
    client = proxy.client()
    await clear_of_a_minute_end()
    results = await asyncio.gather(*(outcome(client) for _ in range(16)))
    assert sorted(results) == ["429:rpm"] * 11 + ["ok"] * 5
    assert len(openai_upstream.fake.requests) == 5
    denied = [r for r in receipts(proxy) if not r.decision.allowed]
    assert {(r.decision.reason, r.decision.budget) for r in denied} == {("rate_limited", "rpm")}


async def test_tpm_admits_exactly_what_the_tokens_allow(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    limit = 2000
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, receipts="memory", limits=[{"tpm": limit}])
    )
    client = proxy.client()
    await clear_of_a_minute_end()
    first = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
    )
    reserved = limit - int(first.headers["x-ratelimit-remaining-tokens"])
    used = first.parse().usage
    assert used is not None
    actual = used.prompt_tokens + used.completion_tokens
    assert actual < reserved  # the reservation is an upper bound, reconciled after
    # The burst's calls use all they reserve, so the count holds whichever ends first.
    openai_upstream.fake.enqueue(
        *[Reply(text="ok", prompt_tokens=reserved - 1, completion_tokens=1)] * 60
    )
    results = await asyncio.gather(*(outcome(client) for _ in range(60)))
    assert results.count("ok") == (limit - actual) // reserved
    assert set(results) == {"ok", "429:tpm"}


async def test_the_sdk_retries_a_rate_limit_after_its_wait_but_never_a_budget_stop(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, receipts="memory", limits=[{"max_in_flight": 1}])
    )
    openai_upstream.fake.enqueue(Reply(text="one two three four", chunk_delay_s=0.1))
    stream = await proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, stream=True
    )
    chunks = aiter(stream)
    await anext(chunks)  # the one slot is taken until this stream ends

    async def drain() -> None:
        async for _ in chunks:
            pass

    # The SDK hears 429 with retry-after: 1, waits, and retries once the stream has ended.
    patient = proxy.client(max_retries=2)
    answer, _ = await asyncio.gather(
        patient.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
        ),
        drain(),
    )
    assert answer.retries_taken >= 1
    limited = [r for r in receipts(proxy) if r.decision.reason == "rate_limited"]
    assert len(limited) == answer.retries_taken
    assert receipts(proxy)[-1].status == "ok"

    broke = await start_proxy(
        make_settings(
            tmp_path / "broke",
            openai_upstream,
            receipts="memory",
            budgets={"per_window": {"window": "day", "limit_usd": "0.000001"}},
        )
    )
    with pytest.raises(openai.RateLimitError) as stop:
        await broke.client(max_retries=2).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
        )
    assert stop.value.code == "day"
    assert len(receipts(broke)) == 1  # one refusal: the SDK did not retry


async def test_a_rate_limit_answer_says_when_to_retry(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, receipts="memory", limits=[{"rpm": 1}])
    )
    client = proxy.client()
    await clear_of_a_minute_end()
    await outcome(client)
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
    error = limited.value
    assert (error.type, error.code) == ("rate_limit_exceeded", "rpm")
    headers = error.response.headers
    assert "x-should-retry" not in headers
    wait = int(headers["retry-after"])
    assert 1 <= wait <= 60
    assert headers["retry-after-ms"] == str(wait * 1000)
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == f"{wait}s"


async def wait_for_no_holds(proxy: Proxy) -> None:
    ledger = proxy.app[GATE].ledger
    for _ in range(200):
        if not (await ledger.statement(tenant_id="acme")).holds:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("a hold was never released")


async def test_in_flight_slots_come_back_after_errors_and_cancellations(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    settings = make_settings(
        tmp_path, openai_upstream, receipts="memory", limits=[{"max_in_flight": 1}]
    )
    # A stream the client left stays in flight while the proxy reads on for its usage: bound
    # that to 0.2 s (the answer would take 10 s).
    server = dataclasses.replace(settings.server, abandoned_read_s=0.2)
    proxy = await start_proxy(dataclasses.replace(settings, server=server))
    client = proxy.client()
    openai_upstream.fake.enqueue(Fault.server_error())
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
    assert await outcome(client) == "ok"  # the failed call gave its slot back

    openai_upstream.fake.enqueue(Reply(text="word " * 200, chunk_delay_s=0.05))
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=500, stream=True
    )
    await anext(aiter(stream))
    assert await outcome(client) == "429:max_in_flight"
    await stream.close()  # the client goes away mid-stream
    await wait_for_no_holds(proxy)
    assert await outcome(client) == "ok"
    assert [r.status for r in receipts(proxy) if r.decision.allowed] == [
        "upstream_error",
        "ok",
        "cancelled",
        "ok",
    ]


async def test_every_answer_carries_the_rate_limit_headers(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(
        make_settings(
            tmp_path, openai_upstream, receipts="memory", limits=[{"rpm": 10, "tpm": 100_000}]
        )
    )
    client = proxy.client()
    await clear_of_a_minute_end()
    first = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
    )
    second = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, stream=True
    )
    async for _ in second.parse():
        pass
    for answer, left in ((first, "9"), (second, "8")):
        headers = answer.headers
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-remaining-requests"] == left
        assert headers["x-ratelimit-limit-tokens"] == "100000"
        assert 0 < int(headers["x-ratelimit-remaining-tokens"]) < 100_000
        reset = headers["x-ratelimit-reset-requests"]
        assert reset == headers["x-ratelimit-reset-tokens"]
        assert reset.endswith("s")
        assert 1 <= int(reset[:-1]) <= 60
    reserved = 100_000 - int(first.headers["x-ratelimit-remaining-tokens"])
    used = first.parse().usage
    assert used is not None
    # The second call saw the first's real tokens, not its reservation.
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == (
        100_000 - (used.prompt_tokens + used.completion_tokens) - reserved
    )


def test_the_readme_limits_example_is_a_valid_config() -> None:
    import re
    import tomllib

    from aegis.core import RateLimit
    from aegis.proxy import parse_settings

    readme = (Path(__file__).parents[2] / "packages/aegis-proxy/README.md").read_text()
    [example] = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "limits = [" in b]
    policy = parse_settings(tomllib.loads(example)).tenants["support"].policy
    assert policy.limits == (
        RateLimit(model="gpt-4o*", rpm=60, tpm=100_000, max_in_flight=8),
        RateLimit(rpm=600),
    )


async def test_gemini_callers_get_the_headers_and_a_resource_exhausted_429(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: Any,
    start_proxy: StartProxy,
) -> None:
    from fakes.gemini_upstream import Reply as GeminiReply
    from fakes.proxy_harness import KEY
    from google import genai
    from google.genai import errors as genai_errors, types

    settings = make_settings(
        tmp_path, openai_upstream, gemini=gemini_upstream, receipts="memory", limits=[{"rpm": 1}]
    )
    proxy = await start_proxy(settings)
    gemini_upstream.fake.script(GeminiReply(text="Bonjour", prompt_tokens=4, candidates_tokens=1))
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=proxy.url))
    await clear_of_a_minute_end()
    response = await client.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="hello",
        config=types.GenerateContentConfig(max_output_tokens=10),
    )
    assert response.sdk_http_response is not None
    headers = response.sdk_http_response.headers or {}
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(genai_errors.ClientError) as limited:
        await client.aio.models.generate_content(
            model="gemini-2.5-flash",
            contents="hello",
            config=types.GenerateContentConfig(max_output_tokens=10),
        )
    assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")

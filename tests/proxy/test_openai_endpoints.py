from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream, Fault, Reply
from fakes.proxy_harness import KEY, UPSTREAM_SECRET, Proxy, make_settings

from aegis.core import MemoryReceiptSink, parse_usd
from aegis.proxy import GATE, Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]


def receipts(proxy: Proxy) -> MemoryReceiptSink:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink


async def test_chat_completion_is_governed_and_receipted(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    raw = await proxy.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}], max_tokens=50
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    (receipt,) = receipts(proxy).receipts
    assert raw.headers["x-aegis-receipt-id"] == receipt.receipt_id
    assert raw.headers["x-aegis-cost-usd"] == receipt.actual_usd
    expected = completion.usage.prompt_tokens * 150 + completion.usage.completion_tokens * 600
    assert parse_usd(receipt.actual_usd) == expected
    assert receipt.status == "ok"
    assert receipt.tenant_id == "acme"
    # The upstream saw the configured key, never the client's virtual key.
    (seen,) = openai_upstream.fake.requests
    assert seen.headers["Authorization"] == f"Bearer {UPSTREAM_SECRET}"


async def test_streamed_chat_passes_chunks_and_withholds_unrequested_usage(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    openai_upstream.fake.enqueue(Reply(text="one two three four"))
    stream = await proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "count"}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    body = openai_upstream.fake.requests[0].body
    assert body["stream_options"] == {"include_usage": True}  # but the proxy did
    assert body["max_completion_tokens"] == 16_384
    (receipt,) = receipts(proxy).receipts
    assert receipt.usage_source == "reported"
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == 4


async def test_streamed_usage_reaches_a_client_that_asks(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    stream = await proxy.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    (receipt,) = receipts(proxy).receipts
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == chunks[-1].usage.completion_tokens


async def test_budget_hard_stop_denies_before_any_upstream_call(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    settings = make_settings(
        tmp_path, openai_upstream, budgets={"per_window": [{"window": "day", "limit_usd": "0.001"}]}
    )
    proxy = await start_proxy(settings)
    with pytest.raises(openai.RateLimitError) as info:
        await proxy.client(max_retries=2).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=1000
        )
    assert info.value.status_code == 429
    assert (info.value.type, info.value.code) == ("budget_exceeded", "day")
    assert info.value.response.headers["x-should-retry"] == "false"
    assert openai_upstream.fake.requests == []
    (receipt,) = receipts(proxy).receipts  # one refusal, not three: the SDK did not retry
    assert receipt.decision.budget == "day"


async def test_auth_failures_are_401(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    with pytest.raises(openai.AuthenticationError):
        await proxy.client(key="aegis-sk-wrong").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    async with (
        aiohttp.ClientSession() as http,
        http.post(proxy.url + "/v1/chat/completions", json={}) as response,
    ):
        assert response.status == 401
        body = await response.json()
    assert body["error"]["code"] == "missing_api_key"
    assert openai_upstream.fake.requests == []


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[]", 400, None),
        (b'{"messages": []}', 400, "model"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', 400, "messages"),
    ],
)
async def test_bad_bodies_get_a_clear_400(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    body: bytes,
    status: int,
    param: str | None,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            proxy.url + "/v1/chat/completions",
            data=body,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == status
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    assert openai_upstream.fake.requests == []


async def test_model_not_allowed_is_403(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, model={"allow_models": ["gpt-4o-mini"]})
    )
    with pytest.raises(openai.PermissionDeniedError):
        await proxy.client().chat.completions.create(
            model="o3", messages=[{"role": "user", "content": "hi"}]
        )
    assert openai_upstream.fake.requests == []


async def test_provider_client_errors_come_back_unchanged(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    openai_upstream.fake.enqueue(Fault.bad_request("Invalid 'temperature'.", param="temperature"))
    with pytest.raises(openai.BadRequestError) as info:
        await proxy.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], temperature=9
        )
    assert info.value.param == "temperature"
    assert info.value.message.endswith("Invalid 'temperature'.")
    (receipt,) = receipts(proxy).receipts
    assert (receipt.status, receipt.upstream_status, receipt.actual_usd) == (
        "upstream_error",
        400,
        "0",
    )


async def test_retryable_failure_falls_back_with_a_receipt_per_attempt(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    backup_upstream: FakeUpstream,
    start_proxy: StartProxy,
) -> None:
    settings = make_settings(
        tmp_path,
        openai_upstream,
        backup_upstream,
        routing={
            "primary_provider": "openai",
            "fallback_providers": ["backup"],
            "fallback_models": {"gpt-4o": "gpt-4o-mini"},
        },
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(Fault.server_error())
    completion = await proxy.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    assert completion.choices[0].message.content
    assert len(openai_upstream.fake.requests) == 1
    (seen,) = backup_upstream.fake.requests
    assert seen.body["model"] == "gpt-4o-mini"
    failed, served = receipts(proxy).receipts
    assert (failed.provider, failed.status, failed.upstream_status) == (
        "openai",
        "upstream_error",
        500,
    )
    assert (served.provider, served.model, served.status) == ("backup", "gpt-4o-mini", "ok")


async def test_a_client_error_is_never_retried_elsewhere(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    backup_upstream: FakeUpstream,
    start_proxy: StartProxy,
) -> None:
    settings = make_settings(
        tmp_path,
        openai_upstream,
        backup_upstream,
        routing={"primary_provider": "openai", "fallback_providers": ["backup"]},
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(Fault.bad_request())
    with pytest.raises(openai.BadRequestError):
        await proxy.client().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert backup_upstream.fake.requests == []


async def test_no_body_field_can_redirect_the_upstream(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    await proxy.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        extra_body={
            "api_base": "http://169.254.169.254/",
            "base_url": "http://evil.test",
            "user_config": {"api_base": "http://evil.test"},
            "x_custom": [1, 2],
        },
    )
    (seen,) = openai_upstream.fake.requests
    # It reached the configured upstream, with unknown fields passed through untouched.
    assert seen.body["x_custom"] == [1, 2]
    assert seen.body["api_base"] == "http://169.254.169.254/"


async def test_responses_and_embeddings_are_governed(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    client = proxy.client()
    response = await client.responses.create(
        model="gpt-4o-mini", input="hello there", max_output_tokens=40
    )
    assert response.output_text
    stream = await client.responses.create(model="gpt-4o-mini", input="stream it", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.completed"
    vectors = await client.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    assert len(vectors.data) == 2
    sink = receipts(proxy).receipts
    assert [r.capability for r in sink] == ["llm:invoke", "llm:stream", "embeddings:create"]
    assert all(r.status == "ok" and r.usage_source == "reported" for r in sink)
    assert parse_usd(sink[2].actual_usd) == vectors.usage.prompt_tokens * 20


async def test_models_lists_what_the_tenant_may_use(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, model={"allow_models": ["gpt-4o*"]})
    )
    page = await proxy.client().models.list()
    ids = {m.id async for m in page}
    assert ids == {
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-05-13",
        "gpt-4o-audio-preview",
        "gpt-4o-mini-audio-preview",
    }


async def test_idempotency_key_replays_without_a_second_charge(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    client = proxy.client()
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "once"}],
        "max_tokens": 10,
    }
    first = await client.chat.completions.create(**kwargs, extra_headers={"Idempotency-Key": "k-1"})  # type: ignore[call-overload]
    again = await client.chat.completions.create(**kwargs, extra_headers={"Idempotency-Key": "k-1"})  # type: ignore[call-overload]
    assert again.id == first.id
    assert len(openai_upstream.fake.requests) == 1
    assert len(receipts(proxy).receipts) == 1
    with pytest.raises(openai.UnprocessableEntityError):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "other"}],
            extra_headers={"Idempotency-Key": "k-1"},
        )


async def test_a_client_that_leaves_mid_stream_is_billed_what_the_provider_reports(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    budgets = {"per_window": [{"window": "day", "limit_usd": "100"}]}
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=budgets))
    openai_upstream.fake.enqueue(Reply(text=" ".join(["word"] * 200), chunk_delay_s=0.01))
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            proxy.url + "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "max_tokens": 500,
                "messages": [{"role": "user", "content": "talk"}],
            },
            headers={"Authorization": f"Bearer {KEY}"},
        )
        await response.content.readuntil(b"\n\n")
        await response.content.readuntil(b"\n\n")
        response.close()  # the client goes away
    for _ in range(500):
        if receipts(proxy).receipts:
            break
        await asyncio.sleep(0.02)
    (receipt,) = receipts(proxy).receipts
    # The proxy read on to the stream's end: the provider's usage, all 200 words it generated.
    assert receipt.status == "cancelled"
    assert receipt.usage_source == "reported"
    assert receipt.usage is not None
    assert receipt.usage.output_tokens == 200
    assert parse_usd(receipt.actual_usd) <= parse_usd(receipt.reserved_usd)
    # The reservation was settled, not left to expire.
    day = "day:" + datetime.now(UTC).strftime("%Y-%m-%d")
    balance = (await proxy.app[GATE].ledger.balances(tenant_id="acme", keys=[day]))[day]
    assert balance.pending_nanos == 0
    assert balance.committed_nanos == parse_usd(receipt.actual_usd)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/nope", 404), ("DELETE", "/v1/chat/completions", 405), ("GET", "/", 404)],
)
async def test_unknown_routes_answer_in_openai_s_shape(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    method: str,
    path: str,
    status: int,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, proxy.url + path, headers={"x-request-id": "trace-me-1"}) as response,
    ):
        assert response.status == status
        assert response.headers["x-request-id"] == "trace-me-1"
        error = (await response.json())["error"]
    assert path in error["message"]
    assert error["type"]


async def test_an_idempotency_key_in_use_is_409(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    openai_upstream.fake.enqueue(Reply(text="slow answer", delay_s=0.5))
    client = proxy.client()
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 5,
        "extra_headers": {"Idempotency-Key": "k-2"},
    }
    first = asyncio.create_task(client.chat.completions.create(**kwargs))  # type: ignore[call-overload]
    await asyncio.sleep(0.1)
    with pytest.raises(openai.ConflictError):
        await client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    assert (await first).choices[0].message.content == "slow answer"
    assert len(openai_upstream.fake.requests) == 1

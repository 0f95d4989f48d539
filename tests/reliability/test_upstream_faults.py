"""Upstreams that misbehave: the client gets a clear error (or the fallback's answer), every
attempt is settled and receipted once, and the ledger's totals equal the receipts' totals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream, Fault, Reply
from fakes.proxy_harness import KEY, Proxy, free_port, make_settings

from aegis.core import MemoryReceiptSink, Receipt, parse_usd
from aegis.proxy import GATE, Settings, parse_settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
MSGS: list[Any] = [{"role": "user", "content": "hello there"}]
BUDGET = {"per_window": [{"window": "month", "limit_usd": "100"}]}


def receipts(proxy: Proxy) -> list[Receipt]:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink.receipts


async def settled(proxy: Proxy, count: int = 1) -> list[Receipt]:
    """The receipts once ``count`` are written (a client may stop reading before the proxy
    has settled the call it left)."""
    for _ in range(200):
        if len(receipts(proxy)) >= count:
            break
        await asyncio.sleep(0.01)
    return receipts(proxy)


async def books_balance(proxy: Proxy) -> None:
    """No hold left, and what the ledger committed is what the receipts charged."""
    statement = await proxy.app[GATE].ledger.statement(tenant_id="acme")
    assert statement.holds == ()
    (month,) = [b for k, b in statement.balances.items() if k.startswith("month:")]
    assert month.pending_nanos == 0
    assert month.committed_nanos == sum(parse_usd(r.actual_usd) for r in receipts(proxy))


def with_server(settings: Settings, base_url: str | None = None, **server: Any) -> Settings:
    """``settings`` with other ``[server]`` values (and another upstream URL)."""
    data: dict[str, Any] = {
        "server": server,
        "ledger": {"backend": "sqlite", "path": str(settings.ledger.path)},
        "receipts": {"sink": "memory"},
        "providers": {
            n: {"type": p.type, "base_url": base_url or p.base_url, "api_key_env": p.api_key_env}
            for n, p in settings.providers.items()
        },
        "tenants": {
            t.tenant_id: {"api_keys": list(t.api_key_hashes), **t.policy.to_dict()}
            for t in settings.tenants.values()
        },
    }
    return parse_settings(data)


async def test_connection_refused_is_a_clear_502_and_costs_nothing(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = with_server(make_settings(tmp_path, openai_upstream, budgets=BUDGET), dead)
    proxy = await start_proxy(settings)
    with pytest.raises(openai.APIStatusError) as info:
        await proxy.client().chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert info.value.status_code == 502
    assert "every provider failed" in info.value.message
    (receipt,) = receipts(proxy)
    assert (receipt.status, receipt.actual_usd) == ("upstream_error", "0")
    await books_balance(proxy)


async def test_a_read_timeout_charges_the_reservation(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    settings = with_server(
        make_settings(tmp_path, openai_upstream, budgets=BUDGET), read_timeout_s=0.3
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(Reply(delay_s=2))
    with pytest.raises(openai.APIStatusError) as info:
        await proxy.client().chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, max_tokens=20
        )
    assert info.value.status_code == 504
    (receipt,) = receipts(proxy)
    assert receipt.status == "upstream_error"
    assert receipt.usage_source == "reservation"
    assert receipt.actual_usd == receipt.reserved_usd
    await books_balance(proxy)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_come_back_when_no_fallback_is_left(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy, status: int
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    openai_upstream.fake.enqueue(Fault(status, "the upstream is down"))
    with pytest.raises(openai.InternalServerError) as info:
        await proxy.client().chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert info.value.status_code == status
    assert info.value.message.endswith("the upstream is down")
    (receipt,) = receipts(proxy)
    assert (receipt.status, receipt.upstream_status, receipt.actual_usd) == (
        "upstream_error",
        status,
        "0",
    )
    await books_balance(proxy)


async def test_a_rate_limit_keeps_its_retry_after_and_the_sdk_retries_it(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    openai_upstream.fake.enqueue(Fault.rate_limited(retry_after_ms=10))
    completion = await proxy.client(max_retries=2).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=10
    )
    assert completion.choices[0].message.content
    limited, served = receipts(proxy)
    assert (limited.upstream_status, served.status) == (429, "ok")
    async with aiohttp.ClientSession() as http:
        openai_upstream.fake.enqueue(Fault.rate_limited(retry_after_ms=1500))
        async with http.post(
            proxy.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MSGS},
            headers={"Authorization": f"Bearer {KEY}"},
        ) as response:
            assert response.status == 429
            assert response.headers["retry-after-ms"] == "1500"
    await books_balance(proxy)


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (Reply(text=" ".join(["w"] * 30), break_after=5), "upstream_error"),
        (Reply(text=" ".join(["w"] * 30), garbage_after=5), "upstream_error"),
        (Reply(text=" ".join(["w"] * 30), error_after=5), "upstream_error"),
        (Reply(text=" ".join(["w"] * 30), report_usage=False), "ok"),
    ],
    ids=["cut-without-done", "garbage", "error-event", "no-usage"],
)
async def test_streams_without_their_final_usage_are_charged_the_reservation(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    reply: Reply,
    status: str,
) -> None:
    """What was delivered is not what the provider billed (hidden reasoning, output generated
    past the cut): without the provider's final usage, the reservation — the bound of the
    bill — is charged."""
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    openai_upstream.fake.enqueue(reply)
    try:
        stream = await proxy.client().chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, max_tokens=100, stream=True
        )
        async for _ in stream:
            pass
    except openai.APIError:
        pass  # the SDK surfaces an error event or a cut connection its own way
    (receipt,) = await settled(proxy)
    assert receipt.status == status
    assert receipt.usage_source == "reservation"
    assert receipt.actual_usd == receipt.reserved_usd
    await books_balance(proxy)


async def test_a_response_without_usage_is_charged_what_was_counted(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    # As a stream without its usage chunk: the input bound plus the counted output (at most
    # the limit), never the whole reservation.
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    openai_upstream.fake.enqueue(Reply(report_usage=False))
    await proxy.client().chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=50)
    (receipt,) = receipts(proxy)
    assert receipt.usage_source == "counted"
    assert 0 < parse_usd(receipt.actual_usd) <= parse_usd(receipt.reserved_usd)
    assert receipt.usage is not None
    assert receipt.usage.output_tokens <= 50
    await books_balance(proxy)


async def test_usage_above_the_reservation_is_posted_and_flagged(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream, budgets=BUDGET))
    openai_upstream.fake.enqueue(Reply(completion_tokens=5_000))
    await proxy.client().chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=10)
    (receipt,) = receipts(proxy)
    assert receipt.overage
    assert parse_usd(receipt.actual_usd) > parse_usd(receipt.reserved_usd)
    await books_balance(proxy)

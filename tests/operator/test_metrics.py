from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from fakes.gemini_upstream import FakeGeminiServer, Reply as GeminiReply
from fakes.openai_upstream import FakeUpstream, Fault, Reply
from fakes.proxy_harness import KEY, OTHER_KEY, Proxy
from google import genai
from google.genai import types

from aegis.core import MemoryReceiptSink, Receipt, default_pricing_table
from aegis.proxy import GATE, Settings, parse_settings

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
StartProxy = Callable[[Settings], Awaitable[Proxy]]
Scrape = Callable[[Proxy], Awaitable[Samples]]
PRICED = frozenset(default_pricing_table().models())


def receipts_of(proxy: Proxy) -> list[Receipt]:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return list(sink.receipts)


def family(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def model_label(model: str | None) -> str:
    return model if model in PRICED else "other"


async def scripted_calls(proxy: Proxy, upstream: FakeUpstream) -> None:
    """Every outcome the metrics distinguish, for two tenants."""
    acme = proxy.client()
    hi: list[Any] = [{"role": "user", "content": "hi there"}]
    await acme.chat.completions.create(model="gpt-4o-mini", messages=hi, max_tokens=50)
    upstream.fake.enqueue(Reply(text="one two three four five"))
    stream = await acme.chat.completions.create(model="gpt-4o-mini", messages=hi, stream=True)
    async for _chunk in stream:
        pass
    await acme.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    with pytest.raises(openai.RateLimitError):  # worst case $0.16 > the day's $0.05
        await acme.chat.completions.create(model="gpt-4o", messages=hi, max_tokens=16_000)
    with pytest.raises(openai.PermissionDeniedError):
        await acme.chat.completions.create(model="my-private-model", messages=hi)
    upstream.fake.enqueue(Fault.server_error())  # the backup serves it
    await acme.chat.completions.create(model="gpt-4o-mini", messages=hi, max_tokens=20)
    upstream.fake.enqueue(Fault.bad_request())  # a client error: never retried elsewhere
    with pytest.raises(openai.BadRequestError):
        await acme.chat.completions.create(model="gpt-4o-mini", messages=hi)
    await proxy.client(OTHER_KEY).chat.completions.create(
        model="gpt-4o-mini", messages=hi, max_tokens=10
    )


async def test_metric_values_match_the_receipts_exactly(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    backup_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    scrape: Scrape,
) -> None:
    settings = settings_for(
        tmp_path,
        openai_upstream,
        backup_upstream,
        budgets={
            "per_window": [
                {"window": "day", "limit_usd": "0.05"},
                {"window": "month", "limit_usd": "100", "hard_stop": False},
            ]
        },
        model={"allow_models": ["gpt-*", "text-embedding-*"]},
        routing={"primary_provider": "openai", "fallback_providers": ["backup"]},
    )
    proxy = await start_proxy(settings)
    await scripted_calls(proxy, openai_upstream)
    receipts = receipts_of(proxy)
    samples = await scrape(proxy)

    # One receipt per decision: 8 calls, one of which fell back (two receipts).
    assert len(receipts) == 9
    expected_requests = Counter(
        labels(
            tenant=r.tenant_id,
            provider=r.provider or "",
            model=model_label(r.model),
            outcome=r.status,
            reason=r.decision.reason or "",
            budget=r.decision.budget or "",
        )
        for r in receipts
    )
    assert family(samples, "aegis_requests_total") == dict(expected_requests)
    denied_by_day = labels(
        tenant="acme",
        provider="openai",
        model="gpt-4o",
        outcome="denied",
        reason="budget_exceeded",
        budget="day",
    )
    assert expected_requests[denied_by_day] == 1
    assert (
        sum(n for lbl, n in expected_requests.items() if ("model", "other") in lbl) == 1
    )  # my-private-model

    tokens: Counter[frozenset[tuple[str, str]]] = Counter()
    spend: dict[frozenset[tuple[str, str]], Decimal] = {}
    for r in receipts:
        names = {"tenant": r.tenant_id, "provider": r.provider or "", "model": model_label(r.model)}
        spend[labels(**names)] = spend.get(labels(**names), Decimal(0)) + Decimal(r.actual_usd)
        if r.usage is None:
            continue
        for kind, count in (
            ("input", r.usage.input_tokens),
            ("cached_input", r.usage.cached_input_tokens),
            ("output", r.usage.output_tokens),
            ("reasoning", r.usage.reasoning_tokens),
        ):
            if count:
                tokens[labels(**names, kind=kind)] += count
    assert family(samples, "aegis_tokens_total") == dict(tokens)
    assert family(samples, "aegis_spend_usd_total") == {k: float(v) for k, v in spend.items()}
    assert sum(spend.values()) > 0

    # Budgets, as the ledger holds them: every acme charge went to both windows.
    acme_total = sum(Decimal(r.actual_usd) for r in receipts if r.tenant_id == "acme")
    for budget, limit in (("day", Decimal("0.05")), ("month", Decimal(100))):
        key = labels(tenant="acme", budget=budget)
        assert family(samples, "aegis_budget_limit_usd")[key] == float(limit)
        assert family(samples, "aegis_budget_spent_usd")[key] == float(acme_total)
        assert family(samples, "aegis_reserved_usd")[key] == 0.0
        assert family(samples, "aegis_budget_remaining_usd")[key] == float(limit - acme_total)
    assert not any(("tenant", "beta") in k for k in family(samples, "aegis_budget_limit_usd"))

    chat = labels(route="/v1/chat/completions")
    embed = labels(route="/v1/embeddings")
    counts = family(samples, "aegis_request_duration_seconds_count")
    assert counts == {chat: 7.0, embed: 1.0}
    # Denials never reach an upstream: 5 chat requests and the embedding did.
    assert family(samples, "aegis_upstream_duration_seconds_count") == {chat: 5.0, embed: 1.0}
    assert family(samples, "aegis_proxy_overhead_seconds_count") == {chat: 5.0, embed: 1.0}
    assert family(samples, "aegis_time_to_first_token_seconds_count") == {chat: 1.0}
    allowed = [r for r in receipts if r.decision.allowed]
    assert family(samples, "aegis_upstream_attempts_total") == {chat: 6.0, embed: 1.0}
    assert len(allowed) == 7
    assert family(samples, "aegis_fallback_attempts_total") == {chat: 1.0}
    buckets = family(samples, "aegis_request_duration_seconds_bucket")
    assert buckets[frozenset({*chat, ("le", "+Inf")})] == 7.0


async def test_reservations_in_flight_show_as_reserved(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    scrape: Scrape,
) -> None:
    settings = settings_for(
        tmp_path,
        openai_upstream,
        budgets={"per_window": [{"window": "day", "limit_usd": "10"}]},
    )
    proxy = await start_proxy(settings)
    openai_upstream.fake.enqueue(Reply(delay_s=30))
    call = asyncio.create_task(
        proxy.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=100
        )
    )
    await openai_upstream.fake.wait_for_requests(1)
    samples = await scrape(proxy)
    key = labels(tenant="acme", budget="day")
    reserved = family(samples, "aegis_reserved_usd")[key]
    assert reserved > 0
    assert family(samples, "aegis_budget_remaining_usd")[key] == pytest.approx(10 - reserved)
    assert family(samples, "aegis_requests_total") == {}  # nothing settled yet
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str) -> int:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as r:
        await r.read()
        return r.status


async def test_labels_stay_bounded_under_ten_thousand_client_model_names(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    scrape: Scrape,
) -> None:
    proxy = await start_proxy(settings_for(tmp_path, openai_upstream, serve_any_model=True))
    url = proxy.url + "/v1/chat/completions"
    names = [f"client-model-{i}-{'x' * (i % 50)}" for i in range(10_000)]
    async with aiohttp.ClientSession() as http:
        for start in range(0, len(names), 200):
            statuses = await asyncio.gather(
                *(
                    _post(
                        http,
                        url,
                        {"model": m, "messages": [{"role": "user", "content": "hi"}]},
                        KEY,
                    )
                    for m in names[start : start + 200]
                )
            )
            assert set(statuses) == {403}  # unpriced: denied, and receipted
        await _post(
            http, url, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}, KEY
        )
    assert len(receipts_of(proxy)) == 10_001
    samples = await scrape(proxy)
    requests = family(samples, "aegis_requests_total")
    assert requests == {
        labels(
            tenant="acme",
            provider="openai",
            model="other",
            outcome="denied",
            reason="unknown_model",
            budget="",
        ): 10_000.0,
        labels(
            tenant="acme",
            provider="openai",
            model="gpt-4o-mini",
            outcome="ok",
            reason="",
            budget="",
        ): 1.0,
    }
    label_values = {value for (_name, lbl) in samples for _key, value in lbl}
    assert not any(v.startswith("client-model-") for v in label_values)
    assert len(samples) < 200


async def test_unconfigured_tenants_fold_into_one_label(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    scrape: Scrape,
) -> None:
    # A trusted x-tenant-id may name any tenant; unknown ones are denied and count as "other".
    proxy = await start_proxy(settings_for(tmp_path, openai_upstream, trust_tenant_header=True))
    url = proxy.url + "/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        for i in range(300):
            async with http.post(url, json=body, headers={"x-tenant-id": f"stranger-{i}"}) as r:
                assert r.status == 403
    samples = await scrape(proxy)
    assert family(samples, "aegis_requests_total") == {
        labels(
            tenant="other",
            provider="-",
            model="gpt-4o-mini",
            outcome="denied",
            reason="unknown_tenant",
            budget="",
        ): 300.0
    }


async def test_metrics_can_be_turned_off(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
) -> None:
    proxy = await start_proxy(
        settings_for(tmp_path, openai_upstream, observability={"metrics": False})
    )
    async with aiohttp.ClientSession() as http, http.get(proxy.url + "/metrics") as response:
        assert response.status == 404


async def test_gemini_native_calls_are_counted_like_any_other(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    scrape: Scrape,
) -> None:
    proxy = await start_proxy(settings_for(tmp_path, openai_upstream, gemini=gemini_upstream))
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=proxy.url))
    gemini_upstream.fake.script(GeminiReply(text="one two three four", chunks=2))
    async for _chunk in await client.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents="count"
    ):
        pass
    await client.aio.models.embed_content(model="gemini-embedding-001", contents="embed me")
    stream_receipt, embed_receipt = receipts_of(proxy)
    samples = await scrape(proxy)
    assert family(samples, "aegis_requests_total") == {
        labels(
            tenant="acme",
            provider="gemini",
            model=r.model or "",
            outcome="ok",
            reason="",
            budget="",
        ): 1.0
        for r in (stream_receipt, embed_receipt)
    }
    spend = family(samples, "aegis_spend_usd_total")
    for r in (stream_receipt, embed_receipt):
        key = labels(tenant="acme", provider="gemini", model=r.model or "")
        assert spend[key] == float(Decimal(r.actual_usd))
    route = labels(route="/{version}/models/{target}")
    assert family(samples, "aegis_request_duration_seconds_count") == {route: 2.0}
    assert family(samples, "aegis_time_to_first_token_seconds_count") == {route: 1.0}
    assert family(samples, "aegis_upstream_attempts_total") == {route: 2.0}


async def test_with_many_tenants_budget_gauges_cover_the_active_ones(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    scrape: Scrape,
) -> None:
    base = settings_for(
        tmp_path, openai_upstream, budgets={"per_window": [{"window": "day", "limit_usd": "5"}]}
    )
    many = parse_settings(
        {
            "providers": {"openai": {"type": "openai"}},
            "tenants": {
                f"team-{i:04d}": {"budgets": {"per_window": [{"window": "day", "limit_usd": "1"}]}}
                for i in range(1_000)
            },
        }
    ).tenants
    proxy = await start_proxy(dataclasses.replace(base, tenants={**base.tenants, **many}))
    samples = await scrape(proxy)
    assert family(samples, "aegis_budget_limit_usd") == {}  # nobody called yet
    await proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    samples = await scrape(proxy)
    assert family(samples, "aegis_budget_limit_usd") == {labels(tenant="acme", budget="day"): 5.0}

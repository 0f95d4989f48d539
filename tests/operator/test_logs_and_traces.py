from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream, Fault
from fakes.proxy_harness import KEY, UPSTREAM_SECRET, Proxy
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aegis.core import MemoryReceiptSink
from aegis.proxy import ACCESS_LOGGER, GATE, TRACER_PROVIDER, Settings, create_app

StartProxy = Callable[[Settings], Awaitable[Proxy]]
StartApp = Callable[..., Awaitable[Proxy]]
PROMPT = "the secret plan is codeword PINEAPPLE-7731"


def _receipts(proxy: Proxy) -> MemoryReceiptSink:
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    return sink


async def test_one_json_access_line_per_request_without_prompts_or_keys(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    backup_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(
        tmp_path,
        openai_upstream,
        backup_upstream,
        routing={"primary_provider": "openai", "fallback_providers": ["backup"]},
        budgets={"per_window": [{"window": "day", "limit_usd": "0.05"}]},
    )
    proxy = await start_proxy(settings)
    client = proxy.client()
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    await client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=20)
    openai_upstream.fake.enqueue(Fault.server_error())
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, max_tokens=20, extra_headers={"x-request-id": "r-2"}
    )
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=16_000)
    with pytest.raises(openai.AuthenticationError):
        await proxy.client("aegis-sk-wrong-key").chat.completions.create(
            model="gpt-4o-mini", messages=messages
        )

    access = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    lines = [json.loads(r.getMessage()) for r in access]
    assert [line["status"] for line in lines] == [200, 200, 429, 401]
    receipts = _receipts(proxy).receipts
    first, failed, served, denied = receipts
    ok, fell_back, refused, unauthenticated = lines
    assert ok["tenant"] == "acme"
    assert ok["model"] == "gpt-4o-mini"
    assert ok["outcome"] == "ok"
    assert ok["cost_usd"] == first.actual_usd
    assert ok["receipt_id"] == first.receipt_id
    assert ok["request_id"] == first.request_id
    assert ok["route"] == "/v1/chat/completions"
    assert ok["attempts"] == 1
    assert ok["latency_ms"] >= ok["upstream_ms"] > 0
    assert fell_back["request_id"] == "r-2"
    assert fell_back["attempts"] == 2
    assert fell_back["receipt_ids"] == [failed.receipt_id, served.receipt_id]
    assert fell_back["receipt_id"] == served.receipt_id
    assert fell_back["provider"] == "backup"
    assert Decimal(fell_back["cost_usd"]) == Decimal(failed.actual_usd) + Decimal(served.actual_usd)
    assert (refused["outcome"], refused["decision"]) == ("denied", "budget_exceeded")
    assert refused["receipt_id"] == denied.receipt_id
    assert refused["upstream_ms"] is None
    assert unauthenticated["tenant"] is None
    assert unauthenticated["receipt_id"] is None
    # Nothing the proxy logs carries the prompt, a virtual key or the upstream key (the openai
    # SDK's own debug lines, on the client's side of the test, are not the proxy's).
    everything = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("aegis"))
    assert ACCESS_LOGGER in {r.name for r in caplog.records}
    for secret in (PROMPT, "PINEAPPLE", KEY, "aegis-sk-wrong-key", UPSTREAM_SECRET):
        assert secret not in everything


async def test_access_lines_can_be_turned_off(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    settings_for: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    proxy = await start_proxy(
        settings_for(tmp_path, openai_upstream, observability={"access_log": False})
    )
    await proxy.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert _receipts(proxy).receipts
    assert not [r for r in caplog.records if r.name == ACCESS_LOGGER]


async def test_spans_follow_the_genai_conventions_and_continue_the_callers_trace(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    backup_upstream: FakeUpstream,
    start_app: StartApp,
    settings_for: Callable[..., Settings],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = settings_for(
        tmp_path,
        openai_upstream,
        backup_upstream,
        observability={"tracing": "global"},
        routing={"primary_provider": "openai", "fallback_providers": ["backup"]},
    )
    app = create_app(settings)
    app[TRACER_PROVIDER] = provider
    proxy = await start_app(app)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    openai_upstream.fake.enqueue(Fault.server_error())
    completion = await proxy.client().chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=20,
        extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
    )
    assert completion.usage is not None
    failed, served = _receipts(proxy).receipts
    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert server.name == "POST /v1/chat/completions"
    assert server.context is not None
    assert server.parent is not None
    assert format(server.context.trace_id, "032x") == trace_id
    assert format(server.parent.span_id, "016x") == parent_id
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert len(clients) == 2
    for span, receipt in zip(clients, (failed, served), strict=True):
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
        assert span.name == "chat gpt-4o-mini"
        attrs = span.attributes
        assert attrs is not None
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.system"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
        assert attrs["aegis.tenant_id"] == "acme"
        assert attrs["aegis.receipt_id"] == receipt.receipt_id
        assert attrs["aegis.cost_usd"] == receipt.actual_usd
        assert attrs["aegis.decision"] == "allowed"
        assert attrs["aegis.provider"] == receipt.provider
        assert attrs["aegis.status"] == receipt.status
    served_attrs = clients[1].attributes
    assert served_attrs is not None
    assert served_attrs["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert served_attrs["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert clients[0].attributes is not None
    assert clients[0].attributes["error.type"] == "upstream_error"
    for span in spans:
        assert PROMPT not in json.dumps(dict(span.attributes or {}))


def test_tracing_off_loads_no_opentelemetry(tmp_path: Path) -> None:
    script = f"""
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from aegis.proxy import create_app, parse_settings
settings = parse_settings({{
    "ledger": {{"backend": "memory"}},
    "receipts": {{"sink": "memory", "path": {str(tmp_path / "r")!r}}},
}})
async def main():
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/metrics")).status == 401  # closed without a metrics key
        assert (await client.post("/v1/chat/completions", json={{}})).status == 401
asyncio.run(main())
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
print("ok")
"""
    env = {"AEGIS_RECEIPT_SECRET": "receipt-secret-canary-0123456789", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


async def test_a_gemini_served_call_is_traced_as_gemini(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    gemini_upstream: FakeGeminiServer,
    start_app: StartApp,
    settings_for: Callable[..., Settings],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = settings_for(
        tmp_path, openai_upstream, gemini=gemini_upstream, observability={"tracing": "global"}
    )
    app = create_app(settings)
    app[TRACER_PROVIDER] = provider
    proxy = await start_app(app)
    await proxy.client().chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    (receipt,) = _receipts(proxy).receipts
    (span,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert span.attributes is not None
    assert span.attributes["gen_ai.system"] == "gcp.gemini"
    assert span.attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    assert span.attributes["aegis.cost_usd"] == receipt.actual_usd

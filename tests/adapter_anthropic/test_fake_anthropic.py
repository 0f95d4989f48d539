"""The fake Messages API answers the real anthropic SDK as Anthropic does; and it runs as a
process, scripted over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
from adapter_anthropic._support import API_KEY, TENANT, Governance
from anthropic import AsyncAnthropic
from fakes.anthropic_upstream import FakeAnthropic, FakeAnthropicServer, Fault, Reply

from aegis.adapters.anthropic import messages_stream_via_gate, messages_via_gate

ROOT = Path(__file__).resolve().parents[2]
MODEL = "claude-haiku-4-5"
HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


async def test_the_sdks_stream_helper_accumulates_the_fakes_events(
    client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="one two three", cache_read_tokens=7))
    async with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "one two three"
    assert final.content[0].type == "text"
    assert final.stop_reason == "end_turn"
    assert (final.usage.output_tokens, final.usage.cache_read_input_tokens) == (3, 7)


async def test_max_tokens_is_enforced_with_stop_reason_max_tokens(
    client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    fake.enqueue(Reply(text="a b c d e f"))
    message = await client.messages.create(model=MODEL, max_tokens=2, messages=HELLO)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


async def test_tools_round_trip_through_a_governed_call(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    call = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    fake.enqueue(Reply(text=None, tool_uses=[call]), Reply(text="It is sunny."))
    first = await messages_via_gate(
        gate=gov.gate,
        client=client,
        tenant_id=TENANT,
        request_id="t1",
        body={"model": MODEL, "max_tokens": 100, "tools": [WEATHER], "messages": HELLO},
    )
    message = first.response
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Paris"})
    follow_up = [
        *HELLO,
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
        },
    ]
    second = await messages_via_gate(
        gate=gov.gate,
        client=client,
        tenant_id=TENANT,
        request_id="t2",
        body={"model": MODEL, "max_tokens": 100, "tools": [WEATHER], "messages": follow_up},
    )
    assert second.response.content[0].type == "text"
    assert fake.last_body["messages"][2]["content"][0]["tool_use_id"] == "toolu_1"
    assert [r.status for r in gov.receipts] == ["ok", "ok"]


async def test_a_streamed_tool_call_arrives_as_input_json_deltas(
    gov: Governance, client: AsyncAnthropic, fake: FakeAnthropic
) -> None:
    call = {"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    fake.enqueue(Reply(text="Let me look.", tool_uses=[call]))
    stream = await messages_stream_via_gate(
        gate=gov.gate,
        client=client,
        tenant_id=TENANT,
        request_id="t1",
        body={"model": MODEL, "max_tokens": 100, "tools": [WEATHER], "messages": HELLO},
    )
    partial = ""
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
            partial += event.delta.partial_json
    assert partial == '{"city": "Paris"}'
    assert stream.receipt is not None
    assert stream.receipt.status == "ok"


async def test_errors_surface_as_the_sdks_own_classes_with_request_ids(
    server: FakeAnthropicServer,
) -> None:
    async with AsyncAnthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as client:
        server.fake.enqueue(Fault.rate_limited(retry_after_s=3))
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        assert limited.value.response.headers["retry-after"] == "3"
        assert limited.value.type == "rate_limit_error"
        assert str(limited.value.request_id).startswith("req_")
        server.fake.enqueue(Fault.overloaded())
        with pytest.raises(anthropic.InternalServerError) as overloaded:
            await client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
        assert overloaded.value.status_code == 529
        with pytest.raises(anthropic.BadRequestError) as missing:
            await client.messages.create(model=MODEL, max_tokens=0, messages=HELLO)
        assert "max_tokens" in str(missing.value.api_message)
        with pytest.raises(anthropic.BadRequestError) as thinking:
            await client.messages.create(
                model=MODEL,
                max_tokens=2_000,
                thinking={"type": "enabled", "budget_tokens": 4_000},
                messages=HELLO,
            )
        assert "budget_tokens" in str(thinking.value.api_message)
        server.fake.enqueue(Fault(502, raw_body="<html>bad gateway</html>"))
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)


async def test_the_fake_checks_the_key_the_version_header_and_the_model(
    server: FakeAnthropicServer,
) -> None:
    async with AsyncAnthropic(base_url=server.url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(anthropic.AuthenticationError):
            await bad.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    server.fake.known_models = {MODEL}
    async with AsyncAnthropic(base_url=server.url, api_key=API_KEY, max_retries=0) as ok:
        with pytest.raises(anthropic.NotFoundError):
            await ok.messages.create(model="claude-9", max_tokens=5, messages=HELLO)
        count = await ok.messages.count_tokens(model=MODEL, messages=HELLO)
        assert count.input_tokens == 2 + 3
    headers = {"x-api-key": API_KEY, "content-type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + "/v1/messages",
            json={"model": MODEL, "max_tokens": 5, "messages": HELLO},
            headers=headers,
        ) as resp,
    ):
        assert resp.status == 400
        body = await resp.json()
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "anthropic-version: header is required",
    }
    assert server.fake.requests[-1].headers["x-api-key"] == API_KEY


def env_with_tests_on_path() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "tests"), env.get("PYTHONPATH", "")) if p
    )
    return env


@pytest.fixture
async def upstream_process() -> AsyncIterator[str]:
    """``python -m fakes.anthropic_upstream --port 0``; yields its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.anthropic_upstream",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env_with_tests_on_path(),
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    match = re.match(r"listening on (http://\S+)", line)
    assert match, line
    try:
        yield match.group(1)
    finally:
        proc.terminate()
        assert await proc.wait() == 0  # SIGTERM is a clean shutdown


async def test_the_fake_runs_as_a_process_and_is_scripted_over_http(upstream_process: str) -> None:
    control = upstream_process + "/_fake"
    async with aiohttp.ClientSession() as http:
        actions = {
            "actions": [
                {"kind": "fault", "status": 529, "type": "overloaded_error"},
                {"kind": "reply", "text": "scripted reply", "input_tokens": 3},
            ]
        }
        async with http.post(control + "/enqueue", json=actions) as resp:
            assert (await resp.json()) == {"queued": 2}
        async with AsyncAnthropic(base_url=upstream_process, api_key="k", max_retries=0) as client:
            with pytest.raises(anthropic.InternalServerError):
                await client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
            ok = await client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
        assert ok.content[0].type == "text"
        assert ok.content[0].text == "scripted reply"
        assert ok.usage.input_tokens == 3
        async with http.get(control + "/requests") as resp:
            log = await resp.json()
        assert [r["path"] for r in log] == ["/v1/messages"] * 2
        async with http.post(control + "/reset") as resp:
            assert resp.status == 200
        async with http.get(control + "/requests") as resp:
            assert await resp.json() == []

"""Budget alerts through the proxy: a signed webhook per threshold per window, off the call path."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.proxy_harness import Proxy, make_settings

from aegis.core import HmacSha256Signer, MemoryReceiptSink
from aegis.proxy import ALERT_WEBHOOK, GATE, AlertSettings, Settings

RECEIPT_SECRET = "receipt-secret-canary-0123456789"  # what start_proxy puts in the environment
WEBHOOK_SECRET = "webhook-secret-canary-0123456789"
# gpt-4o-mini: 1,000 input tokens and 1 output token cost $0.0001506 a call.
CALL = Reply(text="ok", prompt_tokens=1000, completion_tokens=1)
SOFT_DAY = {
    "per_window": [
        {"window": "day", "limit_usd": "0.001", "hard_stop": False, "alert_at": [0.5, 0.8, 1.0]}
    ]
}


class Receiver:
    """A webhook receiver: records what it gets; ``mode`` says how it answers."""

    def __init__(self) -> None:
        self.events: list[tuple[bytes, dict[str, str]]] = []
        self.mode = "ok"
        self.fail_first = 0
        self.hang = asyncio.Event()
        self.got = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.got:
            self.events.append((body, dict(request.headers)))
            self.got.notify_all()
        if self.mode == "hang":
            await self.hang.wait()  # never set: a receiver that accepts and never answers
        if self.fail_first:
            self.fail_first -= 1
            return web.Response(status=503)
        return web.Response(status=204)

    async def wait_for(self, count: int) -> None:
        async with self.got:
            await self.got.wait_for(lambda: len(self.events) >= count)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body, _ in self.events]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = TestServer(app)
    await server.start_server()
    yield hook, str(server.make_url("/hook"))
    hook.hang.set()
    await server.close()


def alert_settings(tmp_path: Path, upstream: FakeUpstream, url: str) -> Settings:
    settings = make_settings(tmp_path, upstream, budgets=SOFT_DAY)
    return dataclasses.replace(
        settings, alerts=AlertSettings(webhook_url=url, webhook_backoff_s=0.01)
    )


async def chat(proxy: Proxy, calls: int) -> None:
    client = proxy.client()
    for _ in range(calls):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )


async def test_each_threshold_reaches_the_webhook_once_signed(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    receiver: tuple[Receiver, str],
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
) -> None:
    hook, url = receiver
    monkeypatch.setenv("AEGIS_WEBHOOK_SECRET", WEBHOOK_SECRET)
    openai_upstream.fake.enqueue(*[CALL] * 12)
    proxy = await start_proxy(alert_settings(tmp_path, openai_upstream, url))
    await chat(proxy, 12)  # $0.0018 of a soft $0.001: all served
    await proxy.app[ALERT_WEBHOOK].wait_idle()

    assert [e["threshold"] for e in hook.bodies()] == ["0.5", "0.8", "1"]
    verifier = HmacSha256Signer(key_id="aegis-webhook-1", secret=WEBHOOK_SECRET)
    receipt_key = HmacSha256Signer(key_id="aegis-1", secret=RECEIPT_SECRET)
    for body, headers in hook.events:
        # Its own key: what a receiver holds cannot sign receipts (issue 21, item 10).
        assert not receipt_key.verify(body, headers["x-aegis-signature"])
        assert headers["x-aegis-key-id"] == "aegis-webhook-1"
        assert headers["x-aegis-signature-alg"] == "HS256"
        assert verifier.verify(body, headers["x-aegis-signature"])
        assert not verifier.verify(body.replace(b"acme", b"acmf"), headers["x-aegis-signature"])
    first = hook.bodies()[0]
    assert first["type"] == "budget.alert"
    assert (first["tenant_id"], first["budget"], first["hard_stop"]) == ("acme", "day", False)
    assert (first["spent_usd"], first["limit_usd"]) == ("0.0006024", "0.001")
    # Each alert is also in the receipt trail, under the id the webhook names.
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    alerts = [r for r in sink.receipts if r.status == "alert"]
    assert [r.receipt_id for r in alerts] == [e["receipt_id"] for e in hook.bodies()]
    assert sum(r.status == "ok" for r in sink.receipts) == 12


async def test_a_failing_receiver_gets_the_same_event_again_until_it_takes_it(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    receiver: tuple[Receiver, str],
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
) -> None:
    hook, url = receiver
    hook.fail_first = 2
    openai_upstream.fake.enqueue(*[CALL] * 4)
    proxy = await start_proxy(alert_settings(tmp_path, openai_upstream, url))
    await chat(proxy, 4)
    await proxy.app[ALERT_WEBHOOK].wait_idle()
    assert len(hook.events) == 3
    assert len({body for body, _ in hook.events}) == 1


async def test_a_dead_receiver_neither_delays_nor_fails_calls(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    receiver: tuple[Receiver, str],
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
) -> None:
    hook, url = receiver
    hook.mode = "hang"
    openai_upstream.fake.enqueue(*[CALL] * 10)
    proxy = await start_proxy(alert_settings(tmp_path, openai_upstream, url))
    await chat(proxy, 4)
    await hook.wait_for(1)  # the 0.5 alert is being delivered, and will never be answered ...
    await chat(proxy, 6)  # ... while every further call is served
    webhook = proxy.app[ALERT_WEBHOOK]
    await hook.wait_for(3)
    assert webhook.pending == 3  # all three deliveries still hang; no call waited for them
    sink = proxy.app[GATE].sink
    assert isinstance(sink, MemoryReceiptSink)
    assert sum(r.status == "ok" for r in sink.receipts) == 10


async def test_an_unreachable_receiver_is_given_up_after_its_attempts(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: Callable[[Settings], Awaitable[Proxy]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = TestServer(web.Application())
    await closed.start_server()
    url = str(closed.make_url("/hook"))
    await closed.close()  # nothing listens there any more
    settings = alert_settings(tmp_path, openai_upstream, url)
    settings = dataclasses.replace(
        settings, alerts=dataclasses.replace(settings.alerts, webhook_attempts=3)
    )
    openai_upstream.fake.enqueue(*[CALL] * 4)
    proxy = await start_proxy(settings)
    await chat(proxy, 4)
    await proxy.app[ALERT_WEBHOOK].wait_idle()
    lost = [r for r in caplog.records if "not delivered after 3 attempts" in r.getMessage()]
    assert len(lost) == 1
    assert url not in caplog.text  # the URL may carry a token


def test_alert_settings_are_validated_without_echoing_the_url() -> None:
    from aegis.proxy import ConfigProblems, parse_settings

    with pytest.raises(ConfigProblems) as bad:
        parse_settings(
            {
                "alerts": {
                    "webhook_url": "ftp://token-canary@example",
                    "webhook_attempts": 0,
                    "webhook_timeout_s": 0,
                    "webhook_backoff_s": -1,
                    "webhook": "x",
                }
            }
        )
    fields = sorted(p.split(":")[0] for p in bad.value.problems)
    assert fields == [
        "alerts.webhook",
        "alerts.webhook_attempts",
        "alerts.webhook_backoff_s",
        "alerts.webhook_timeout_s",
        "alerts.webhook_url",
    ]
    assert "token-canary" not in str(bad.value)


def test_the_readme_alert_example_is_a_valid_config() -> None:
    import re
    import tomllib

    from aegis.proxy import parse_settings

    readme = (Path(__file__).parents[2] / "packages/aegis-proxy/README.md").read_text()
    [example] = [b for b in re.findall(r"```toml\n(.*?)```", readme, re.S) if "[alerts]" in b]
    settings = parse_settings(tomllib.loads(example))
    policy = settings.tenants["research"].policy
    assert [str(t) for t in policy.per_window[1].alert_at] == ["0.5", "0.8", "1", "1.5"]
    assert settings.alerts.webhook_url == "https://hooks.example.com/aegis"

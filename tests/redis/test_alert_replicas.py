"""Two real `aegis-proxy` replicas on one Redis: each budget alert fires once between them."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.openai_upstream import FakeUpstream, Reply
from fakes.redis_replicas import KEY, StartReplicas
from openai import AsyncOpenAI

from aegis.core import HmacSha256Signer

CALLS = 30


class Receiver:
    def __init__(self) -> None:
        self.events: list[tuple[bytes, str]] = []
        self.got = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self.got:
            self.events.append((body, request.headers["x-aegis-signature"]))
            self.got.notify_all()
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = TestServer(app)
    await server.start_server()
    yield hook, str(server.make_url("/hook"))
    await server.close()


async def test_two_replicas_fire_each_threshold_once(
    start_replicas: StartReplicas,
    openai_upstream: FakeUpstream,
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    tenant = (
        "[tenants.acme.budgets]\n"
        'per_window = [{window = "day", limit_usd = "0.001", hard_stop = false, '
        "alert_at = [0.5, 0.8, 1.0]}]\n"
        f'[alerts]\nwebhook_url = "{url}"\nwebhook_backoff_s = 0.05\n'
    )
    # $0.0001506 a call: 30 calls spend $0.004518 of a soft $0.001.
    openai_upstream.fake.enqueue(
        *[Reply(text="ok", prompt_tokens=1000, completion_tokens=1)] * CALLS
    )
    replicas = await start_replicas(2, tenant)
    clients = [
        AsyncOpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0, timeout=60.0)
        for r in replicas
    ]
    try:
        await asyncio.gather(
            *(
                clients[i % 2].chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=5,
                )
                for i in range(CALLS)
            )
        )
    finally:
        for sdk in clients:
            await sdk.close()

    alerts = [r for replica in replicas for r in replica.receipts() if r["status"] == "alert"]
    assert sorted(r["request_id"].rsplit(":", 1)[1] for r in alerts) == ["0.5", "0.8", "1"]
    async with hook.got:
        await hook.got.wait_for(lambda: len(hook.events) >= 3)
    for replica in replicas:  # stopped: nothing more can arrive
        replica.process.send_signal(signal.SIGTERM)
        replica.process.wait(timeout=30)
    assert sorted(json.loads(body)["threshold"] for body, _ in hook.events) == ["0.5", "0.8", "1"]
    # Every replica signs with the webhook key it is given, never the receipt key.
    verifier = HmacSha256Signer(key_id="aegis-webhook-1", secret="w" * 32)
    assert all(verifier.verify(body, sig) for body, sig in hook.events)
    assert {json.loads(body)["receipt_id"] for body, _ in hook.events} == {
        r["receipt_id"] for r in alerts
    }

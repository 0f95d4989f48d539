"""Two real `aegis-proxy` replicas on one Redis: a rate limit holds exactly between them."""

from __future__ import annotations

import asyncio
import time

import openai
from fakes.redis_replicas import KEY, StartReplicas
from openai import AsyncOpenAI

CALLS = 24


async def test_rpm_holds_exactly_across_replicas(start_replicas: StartReplicas) -> None:
    tenant = "[[tenants.acme.limits]]\nrpm = 7\n"
    replicas = await start_replicas(2, tenant)
    clients = [
        AsyncOpenAI(base_url=r.url + "/v1", api_key=KEY, max_retries=0, timeout=60.0)
        for r in replicas
    ]

    async def one(i: int) -> str:
        try:
            await clients[i % 2].chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
        except openai.RateLimitError as exc:
            return f"429:{exc.code}"
        return "ok"

    into = time.time() % 60
    if into > 45:  # a burst across a minute's end would see two windows
        await asyncio.sleep(60.5 - into)
    try:
        results = await asyncio.gather(*(one(i) for i in range(CALLS)))
    finally:
        for sdk in clients:
            await sdk.close()
    assert sorted(results) == ["429:rpm"] * (CALLS - 7) + ["ok"] * 7
    served = [r for replica in replicas for r in replica.receipts() if r["decision"]["allowed"]]
    assert len(served) == 7

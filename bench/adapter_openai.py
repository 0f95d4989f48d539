"""What governing an SDK call adds: ``chat_completions_via_gate`` against a bare ``AsyncOpenAI``
call to the same local upstream, plus the wire functions the proxy runs per request.

The fake upstream runs in its own process, so this process's CPU time is the SDK's and the
adapter's alone. Bare and governed batches alternate (the order flips every round) and each
figure is the median over rounds; "added" is the median of the per-round differences. The
governed call's time includes the Gate itself (policy, reservation, settlement, a signed
receipt), which is also timed alone.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from aegis.adapters.openai import (
    ChatStreamReader,
    GovernedStream,
    chat_completions_via_gate,
    estimate_chat_request,
    rewrite_chat_request,
    usage_from_chat_completion,
)
from aegis.core import (
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    MemoryLedger,
    MemoryReceiptSink,
    Usage,
    default_pricing_table,
)
from bench._report import report

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 15
CALLS = 150
STREAM_ROUNDS = 9
STREAM_CALLS = 60
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello in one short sentence, please."},
    ],
    "max_completion_tokens": 64,
}


def make_gate() -> Gate:
    return Gate(
        policy_provider=InMemoryPolicyProvider(
            {"bench": {"budgets": {"per_window": [{"window": "month", "limit_usd": "1000000"}]}}}
        ),
        ledger=MemoryLedger(),
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="bench", secret=b"bench-secret-0123456789abcdef"),
        sink=MemoryReceiptSink(),
    )


async def start_upstream() -> tuple[asyncio.subprocess.Process, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.openai_upstream",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    match = re.match(r"listening on (\S+)", line)
    if match is None:
        raise RuntimeError(f"fake upstream did not start: {line!r}")
    return proc, match.group(1)


async def batch(call: Callable[[int], Awaitable[None]], n: int, start: int) -> tuple[float, float]:
    """Mean wall and CPU microseconds per call over ``n`` sequential calls."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n):
        await call(start + i)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall / n * 1e6, cpu / n * 1e6


async def compare(
    bare: Callable[[int], Awaitable[None]],
    governed: Callable[[int], Awaitable[None]],
    rounds: int,
    calls: int,
) -> dict[str, float]:
    await batch(bare, calls // 3, 0)  # warm connections, caches and code paths
    await batch(governed, calls // 3, 10_000_000)
    walls: dict[str, list[float]] = {"bare": [], "governed": []}
    cpus: dict[str, list[float]] = {"bare": [], "governed": []}
    for r in range(rounds):
        order = [("bare", bare), ("governed", governed)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            wall, cpu = await batch(fn, calls, (r + 1) * 100_000)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {
        "bare_wall_us": statistics.median(walls["bare"]),
        "governed_wall_us": statistics.median(walls["governed"]),
        "added_wall_us": statistics.median(
            g - b for g, b in zip(walls["governed"], walls["bare"], strict=True)
        ),
        "bare_cpu_us": statistics.median(cpus["bare"]),
        "governed_cpu_us": statistics.median(cpus["governed"]),
        "added_cpu_us": statistics.median(
            g - b for g, b in zip(cpus["governed"], cpus["bare"], strict=True)
        ),
    }


async def gate_alone(calls: int) -> float:
    """Microseconds per admit + settle, with no upstream at all."""
    gate = make_gate()
    usage = Usage(input_tokens=30, output_tokens=10)
    samples = []
    for r in range(7):
        start = time.perf_counter()
        for i in range(calls):
            permit = await gate.admit(
                tenant_id="bench",
                request_id=f"g{r}-{i}",
                provider="openai",
                model="gpt-4o-mini",
                input_tokens=100,
                max_output_tokens=64,
            )
            await gate.settle(permit, usage=usage)
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def row(measure: str, wall_us: float | None, cpu_us: float) -> dict[str, Any]:
    return {
        "measure": measure,
        "wall_us": "" if wall_us is None else round(wall_us, 1),
        "cpu_us": round(cpu_us, 1),
    }


def wire_rows() -> list[dict[str, Any]]:
    """The proxy's per-request wire functions, timed alone."""
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(
        {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 30,
                "completion_tokens": 3,
                "total_tokens": 33,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )
    raw = completion.to_dict()
    chunk = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"gpt-4o-mini",'
        b'"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}],'
        b'"usage":null}\n\n'
    )
    stream_body = {**BODY, "stream": True}
    stream_bytes = chunk * 100
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("estimate_chat_request", lambda: estimate_chat_request(BODY), 1),
        (
            "rewrite_chat_request (stream)",
            lambda: rewrite_chat_request(stream_body, max_output_tokens=64),
            1,
        ),
        (
            "rewrite + to_bytes (append)",
            lambda: rewrite_chat_request(stream_body, max_output_tokens=64).to_bytes(b"{}"),
            1,
        ),
        ("usage_from_chat_completion (JSON)", lambda: usage_from_chat_completion(raw), 1),
        ("usage_from_chat_completion (SDK)", lambda: usage_from_chat_completion(completion), 1),
        (
            "ChatStreamReader.feed, per chunk",
            lambda: ChatStreamReader(max_output_tokens=1000).feed(stream_bytes),
            100,
        ),
    ]
    rows = []
    for name, fn, per in cases:
        number = 2000 // per
        best = min(timeit.repeat(fn, number=number, repeat=7)) / number / per * 1e6
        rows.append(row(f"wire: {name}", None, best))
    return rows


async def main() -> None:
    proc, base_url = await start_upstream()
    try:
        gate = make_gate()
        async with AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as client:
            create = client.chat.completions.create

            async def bare(i: int) -> None:
                await create(**BODY)

            async def governed(i: int) -> None:
                await chat_completions_via_gate(
                    gate=gate, client=client, tenant_id="bench", request_id=f"c{i}", body=BODY
                )

            async def bare_stream(i: int) -> None:
                stream = await create(**BODY, stream=True, stream_options={"include_usage": True})
                async for _ in stream:
                    pass

            async def governed_stream(i: int) -> None:
                stream = await chat_completions_via_gate(
                    gate=gate,
                    client=client,
                    tenant_id="bench",
                    request_id=f"s{i}",
                    body={**BODY, "stream": True},
                )
                assert isinstance(stream, GovernedStream)
                async for _ in stream:
                    pass

            plain = await compare(bare, governed, ROUNDS, CALLS)
            streamed = await compare(bare_stream, governed_stream, STREAM_ROUNDS, STREAM_CALLS)
        gate_us = await gate_alone(2000)
    finally:
        proc.terminate()
        await proc.wait()

    def rows_for(name: str, figures: dict[str, float]) -> list[dict[str, Any]]:
        added_cpu = figures["added_cpu_us"]
        return [
            row(f"{name}: bare SDK call", figures["bare_wall_us"], figures["bare_cpu_us"]),
            row(f"{name}: governed call", figures["governed_wall_us"], figures["governed_cpu_us"]),
            row(f"{name}: added by governing", figures["added_wall_us"], added_cpu),
            row(f"{name}: added, less the Gate", None, added_cpu - gate_us),
        ]

    rows = rows_for("chat", plain) + rows_for("chat stream (12 chunks)", streamed)
    rows.append(row("Gate alone: admit + settle + signed receipt", None, gate_us))
    rows += wire_rows()
    report(
        "adapter_openai",
        rows,
        note=(
            f"{ROUNDS} rounds x {CALLS} calls (streams: {STREAM_ROUNDS} x {STREAM_CALLS}), "
            "bare and governed interleaved, medians; upstream in a separate process. "
            "'less the Gate' = the adapter's own work (estimate, rewrite, SDK kwargs, usage, "
            "stream metering). Wire rows: best of 7, CPU microseconds per call (per chunk for "
            "the reader). Goal: added < 100 us per call."
        ),
    )


if __name__ == "__main__":
    asyncio.run(main())

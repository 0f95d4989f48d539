"""What governing an SDK call adds: ``chat_completions_via_gate`` against a bare ``AsyncOpenAI``
call to the same local upstream, plus the wire functions the proxy runs per request.

The fake upstream runs in its own process, so this process's CPU time is the SDK's, the Gate's
and the adapter's alone. Three variants run interleaved in small batches (the order rotates
every round): the bare SDK call; the bare call between a hand-written ``Gate.admit`` and
``Gate.settle`` (what the Gate costs around an SDK call); and the governed call. Each figure is
the median over rounds of a batch's mean; an "added" figure is the median of the per-round
differences, so slow spells of a busy machine hit both sides of each difference.

The adapter's own cost is governed minus bare-plus-Gate: estimate, rewrite, SDK kwargs, usage
mapping and, for streams, metering every chunk.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import statistics
import sys
import time
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.resources.chat.completions import AsyncCompletions
from openai.types.chat import ChatCompletion, ChatCompletionChunk

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
ROUNDS = 45
CALLS = 15
STREAM_ROUNDS = 30
STREAM_CALLS = 8
BODY: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello in one short sentence, please."},
    ],
    "max_completion_tokens": 64,
}
STREAM_BODY: dict[str, Any] = {**BODY, "stream": True}
COMPLETION: dict[str, Any] = {
    "id": "c",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}
    ],
    "usage": {
        "prompt_tokens": 30,
        "completion_tokens": 3,
        "total_tokens": 33,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}
_CHUNK: dict[str, Any] = {
    "id": "c",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "gpt-4o-mini",
    "usage": None,
}
STREAM_CHUNKS: list[dict[str, Any]] = [
    {**_CHUNK, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
    for i in range(12)
] + [{**_CHUNK, "choices": [], "usage": COMPLETION["usage"]}]

Call = Callable[[int], Awaitable[None]]


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


async def batch(call: Call, n: int, start: int) -> tuple[float, float]:
    """Mean wall and CPU microseconds per call over ``n`` sequential calls."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(n):
        await call(start + i)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall / n * 1e6, cpu / n * 1e6


async def interleave(
    variants: dict[str, Call], rounds: int, calls: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per variant: the (wall, CPU) mean of each round's batch."""
    names = list(variants)
    for offset, name in enumerate(names):  # warm connections, caches and code paths
        await batch(variants[name], calls * 2, 90_000_000 + offset * 1_000_000)
    out: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for offset, name in enumerate(order):
            wall, cpu = await batch(variants[name], calls, (r * 10 + offset) * 1000)
            out[name][0].append(wall)
            out[name][1].append(cpu)
    return out


def median_diff(a: list[float], b: list[float]) -> float:
    return statistics.median(x - y for x, y in zip(a, b, strict=True))


def row(measure: str, wall_us: float | None, cpu_us: float) -> dict[str, Any]:
    return {
        "measure": measure,
        "wall_us": "" if wall_us is None else round(wall_us, 1),
        "cpu_us": round(cpu_us, 1),
    }


def summarize(label: str, runs: dict[str, tuple[list[float], list[float]]]) -> list[dict[str, Any]]:
    (bare_w, bare_c), (gate_w, gate_c), (gov_w, gov_c) = (
        runs["bare"],
        runs["gate"],
        runs["governed"],
    )
    return [
        row(f"{label}: bare SDK call", statistics.median(bare_w), statistics.median(bare_c)),
        row(f"{label}: governed call", statistics.median(gov_w), statistics.median(gov_c)),
        row(f"{label}: added by governing", median_diff(gov_w, bare_w), median_diff(gov_c, bare_c)),
        row(
            f"{label}:   of which the Gate",
            median_diff(gate_w, bare_w),
            median_diff(gate_c, bare_c),
        ),
        row(
            f"{label}:   of which the adapter",
            median_diff(gov_w, gate_w),
            median_diff(gov_c, gate_c),
        ),
    ]


class _ReplayStream(openai.AsyncStream[ChatCompletionChunk]):
    """An SDK stream that replays parsed chunks: the SDK's parsing is not what is measured."""

    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:  # no super(): no response
        self._chunks = chunks
        self.response = SimpleNamespace(status_code=200)  # type: ignore[assignment]

    async def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        for chunk in self._chunks:
            yield chunk

    async def close(self) -> None:
        return None


def _replay_client(result: Callable[[], object]) -> Any:
    """A stand-in for ``AsyncOpenAI`` whose ``chat.completions.create`` (with the SDK's own
    signature) returns at once, to time the governed work outside the SDK call."""

    async def create(**kwargs: Any) -> object:
        return result()

    create.__signature__ = inspect.signature(AsyncCompletions.create)  # type: ignore[attr-defined]
    return SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))


async def in_process(calls: int) -> list[dict[str, Any]]:
    """CPU per call of the Gate alone, and of the governed path with the SDK call answered at
    once (best of 7 batches): the same split without any network or SDK noise."""
    completion = ChatCompletion.model_validate(COMPLETION)
    chunks = [ChatCompletionChunk.model_validate(c) for c in STREAM_CHUNKS]
    gate = make_gate()
    plain = _replay_client(lambda: completion)
    streamed = _replay_client(lambda: _ReplayStream(chunks))
    usage = Usage(input_tokens=30, output_tokens=3)

    async def gate_only(i: int) -> None:
        permit = await gate.admit(
            tenant_id="bench",
            request_id=f"g{i}",
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=100,
            max_output_tokens=64,
        )
        await gate.settle(permit, usage=usage)

    async def governed(i: int) -> None:
        await chat_completions_via_gate(
            gate=gate, client=plain, tenant_id="bench", request_id=f"o{i}", body=BODY
        )

    async def governed_stream(i: int) -> None:
        stream = await chat_completions_via_gate(
            gate=gate, client=streamed, tenant_id="bench", request_id=f"s{i}", body=STREAM_BODY
        )
        assert isinstance(stream, GovernedStream)
        async for _ in stream:
            pass

    best: dict[str, float] = {}
    for name, fn in (("gate", gate_only), ("chat", governed), ("stream", governed_stream)):
        samples = []
        for r in range(7):
            start = time.process_time()
            for i in range(calls):
                await fn(r * calls + i)
            samples.append((time.process_time() - start) / calls * 1e6)
        best[name] = min(samples)
    return [
        row("in-process: Gate alone (admit + settle + receipt)", None, best["gate"]),
        row("in-process: chat, governed work outside the SDK", None, best["chat"]),
        row("in-process:   of which the adapter", None, best["chat"] - best["gate"]),
        row("in-process: stream, governed work outside the SDK", None, best["stream"]),
        row("in-process:   of which the adapter", None, best["stream"] - best["gate"]),
    ]


def wire_rows() -> list[dict[str, Any]]:
    """The proxy's per-request wire functions, timed alone (best of 7, CPU microseconds)."""
    completion = ChatCompletion.model_validate(COMPLETION)
    chunk = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"gpt-4o-mini",'
        b'"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}],'
        b'"usage":null}\n\n'
    )
    stream_bytes = chunk * 100
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("estimate_chat_request", lambda: estimate_chat_request(BODY), 1),
        (
            "rewrite_chat_request (stream)",
            lambda: rewrite_chat_request(STREAM_BODY, max_output_tokens=64),
            1,
        ),
        (
            "rewrite + to_bytes (append)",
            lambda: rewrite_chat_request(STREAM_BODY, max_output_tokens=64).to_bytes(b'{"a":1}'),
            1,
        ),
        ("usage_from_chat_completion (JSON)", lambda: usage_from_chat_completion(COMPLETION), 1),
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
    gate = make_gate()
    usage = Usage(input_tokens=30, output_tokens=3)
    proc, base_url = await start_upstream()
    try:
        async with AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as client:
            create = client.chat.completions.create

            async def around(i: int, call: Callable[[], Awaitable[None]]) -> None:
                permit = await gate.admit(
                    tenant_id="bench",
                    request_id=f"h{i}",
                    provider="openai",
                    model="gpt-4o-mini",
                    input_tokens=100,
                    max_output_tokens=64,
                )
                await call()
                await gate.settle(permit, usage=usage)

            async def bare(i: int) -> None:
                await create(**BODY)

            async def bare_stream(i: int) -> None:
                stream = await create(**STREAM_BODY, stream_options={"include_usage": True})
                async for _ in stream:
                    pass

            async def governed(i: int) -> None:
                await chat_completions_via_gate(
                    gate=gate, client=client, tenant_id="bench", request_id=f"c{i}", body=BODY
                )

            async def governed_stream(i: int) -> None:
                stream = await chat_completions_via_gate(
                    gate=gate,
                    client=client,
                    tenant_id="bench",
                    request_id=f"s{i}",
                    body=STREAM_BODY,
                )
                assert isinstance(stream, GovernedStream)
                async for _ in stream:
                    pass

            plain = await interleave(
                {
                    "bare": bare,
                    "gate": lambda i: around(i, lambda: bare(i)),
                    "governed": governed,
                },
                ROUNDS,
                CALLS,
            )
            streamed = await interleave(
                {
                    "bare": bare_stream,
                    "gate": lambda i: around(i + 500_000_000, lambda: bare_stream(i)),
                    "governed": governed_stream,
                },
                STREAM_ROUNDS,
                STREAM_CALLS,
            )
    finally:
        proc.terminate()
        await proc.wait()
    rows = summarize("chat", plain) + summarize("stream, 12 chunks", streamed)
    rows += await in_process(1000)
    rows += wire_rows()
    report(
        "adapter_openai",
        rows,
        note=(
            f"End to end: {ROUNDS} rounds x {CALLS} calls (streams {STREAM_ROUNDS} x "
            f"{STREAM_CALLS}), bare / bare+Gate / governed interleaved, medians, upstream in its "
            "own process; 'of which the adapter' = governed - (bare + Gate). In-process rows: "
            "the governed path with the SDK call answered at once. Wire rows: best of 7. "
            "Goal: the adapter adds < 100 us per call."
        ),
    )


if __name__ == "__main__":
    asyncio.run(main())

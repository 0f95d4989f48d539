"""aegis-adapters-gemini: cost of the pure wire functions, and the Gate's overhead on SDK calls.

Run: uv run python -m bench.adapter_gemini
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from aegis.adapters.gemini import (
    ChatStreamTranslator,
    SseParser,
    chat_request_to_gemini,
    estimate_generate_content,
    gemini_response_to_chat,
    generate_content_via_gate,
    output_limits,
    with_output_limits,
)
from aegis.core import (
    Gate,
    HmacSha256Signer,
    InMemoryPolicyProvider,
    MemoryLedger,
    MemoryReceiptSink,
    default_pricing_table,
)
from bench._report import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakes.gemini_upstream import FakeGeminiServer, Reply

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Does a thing with a city " * 4,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for i in range(5)
]
MESSAGES: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful. " * 20}]
for i in range(4):
    MESSAGES += [
        {"role": "user", "content": f"Question {i}: " + "lorem ipsum dolor sit amet " * 30},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": "tool_1", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": f"call_{i}", "content": "sunny " * 40},
    ]
MESSAGES.append({"role": "user", "content": "And now?"})
REQUEST = {"model": "gemini-2.5-flash", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 512}
RESPONSE = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "An answer. " * 50}]},
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 900,
        "candidatesTokenCount": 120,
        "totalTokenCount": 1020,
    },
}


def per_op_us(fn: Callable[[], object], n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def stream_body(chunks: int) -> bytes:
    out = []
    for i in range(chunks):
        chunk = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "token " * 4}]}}],
            "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 4 * (i + 1)},
        }
        out.append(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
    return b"".join(out)


def translate_stream(body: bytes) -> int:
    parser = SseParser()
    translator = ChatStreamTranslator(model="m", include_usage=True)
    events = 0
    for start in range(0, len(body), 1400):  # network-sized reads
        for chunk in parser.feed(body[start : start + 1400]):
            events += len(translator.feed(chunk))
    return events + len(translator.finish())


async def sdk_latencies(n: int) -> tuple[list[float], list[float]]:
    gate = Gate(
        policy_provider=InMemoryPolicyProvider({"t": {"budgets": {"per_run_usd": "1000000"}}}),
        ledger=MemoryLedger(),
        pricing=default_pricing_table(),
        signer=HmacSha256Signer(key_id="k", secret=b"0" * 32),
        sink=MemoryReceiptSink(),
    )
    async with FakeGeminiServer() as server:
        server.fake.default = Reply(text="ok")
        client = genai.Client(
            api_key="test",
            http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"),
        )
        contents = "lorem ipsum dolor sit amet " * 40
        raw, governed = [], []
        for i in range(n):
            start = time.perf_counter()
            await client.aio.models.generate_content(model="gemini-2.5-flash", contents=contents)
            raw.append(time.perf_counter() - start)
            start = time.perf_counter()
            await generate_content_via_gate(
                gate=gate,
                client=client,
                tenant_id="t",
                request_id=f"r{i}",
                model="gemini-2.5-flash",
                contents=contents,
            )
            governed.append(time.perf_counter() - start)
        await client.aio.aclose()
    return raw[5:], governed[5:]


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)  # google-genai subclasses ClientSession
    translated = chat_request_to_gemini(REQUEST)
    body = translated.body
    estimate = estimate_generate_content(
        body, model="gemini-2.5-flash", model_max_output_tokens=65_536, context_window=1_048_576
    )
    sse = stream_body(200)
    rows = [
        {
            "operation": "chat_request_to_gemini (14 messages, 5 tools)",
            "us_per_op": round(per_op_us(lambda: chat_request_to_gemini(REQUEST), 3000), 1),
        },
        {
            "operation": "estimate_generate_content (same body)",
            "us_per_op": round(
                per_op_us(
                    lambda: estimate_generate_content(
                        body,
                        model="gemini-2.5-flash",
                        model_max_output_tokens=65_536,
                        context_window=1_048_576,
                    ),
                    3000,
                ),
                1,
            ),
        },
        {
            "operation": "with_output_limits",
            "us_per_op": round(
                per_op_us(lambda: with_output_limits(body, output_limits(estimate, 1000)), 20000),
                2,
            ),
        },
        {
            "operation": "gemini_response_to_chat",
            "us_per_op": round(
                per_op_us(lambda: gemini_response_to_chat(RESPONSE, model="m"), 10000), 1
            ),
        },
        {
            "operation": "SSE parse + chunk translation, per chunk (200-chunk stream)",
            "us_per_op": round(per_op_us(lambda: translate_stream(sse), 50) / 200, 2),
        },
    ]
    raw, governed = asyncio.run(sdk_latencies(200))
    raw_us = statistics.median(raw) * 1e6
    gov_us = statistics.median(governed) * 1e6
    rows += [
        {"operation": "SDK generate_content, median (local fake)", "us_per_op": round(raw_us)},
        {"operation": "generate_content_via_gate, median", "us_per_op": round(gov_us)},
        {"operation": "Gate overhead per SDK call, median", "us_per_op": round(gov_us - raw_us)},
    ]
    report(
        "adapter_gemini",
        rows,
        note="Gate overhead = in-memory ledger + receipts + SDK body conversion for the estimate.",
    )


if __name__ == "__main__":
    main()

"""What the attack tests share: a reasoning model's answer, the calls an attacker makes with
the real SDK (and raw Gemini calls), and the provider's own bill priced from the usage it
reports."""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import openai
from openai import AsyncOpenAI

from aegis.core import ModelPrice, Usage, default_pricing_table
from fakes.openai_upstream import Bill, Reply

__all__ = [
    "MAX_OUTPUT",
    "MSGS",
    "O3",
    "REASONING",
    "ask_cut",
    "gemini_billed",
    "generate",
    "leave_chat_after_first_token",
    "leave_responses_after_first_token",
    "provider_billed",
    "stream_to_the_end",
]

MSGS: Final[list[Any]] = [{"role": "user", "content": "think hard, then answer"}]
REASONING: Final = Reply(text=" ".join(["word"] * 80), reasoning_tokens=5_000, chunk_delay_s=0.005)
"""An o3 answer: 5,000 hidden reasoning tokens, then visible text, one word per event."""
MAX_OUTPUT: Final = 6_000
"""The output limit the attacker asks for (the reservation covers it)."""
_O3 = default_pricing_table().get("o3")
assert _O3 is not None
O3: Final[ModelPrice] = _O3


def provider_billed(bills: list[Bill], price: ModelPrice = O3) -> int:
    """What the provider invoices, in nano-USD, from the usage it reports."""
    return sum(
        price.cost_nanos(
            Usage(
                input_tokens=b.prompt_tokens,
                cached_input_tokens=b.cached_tokens,
                output_tokens=b.completion_tokens,
            )
        )
        for b in bills
    )


async def leave_chat_after_first_token(sdk: AsyncOpenAI) -> int:
    """Start a streamed chat call and leave at its first visible token (its HTTP status)."""
    try:
        stream = await sdk.chat.completions.create(
            model="o3", messages=MSGS, max_completion_tokens=MAX_OUTPUT, stream=True
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await stream.close()
    return 200


async def leave_responses_after_first_token(sdk: AsyncOpenAI) -> int:
    """The same on the Responses API."""
    try:
        stream = await sdk.responses.create(
            model="o3", input="think hard", max_output_tokens=MAX_OUTPUT, stream=True
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    async for event in stream:
        if event.type == "response.output_text.delta":
            break
    await stream.close()
    return 200


async def stream_to_the_end(sdk: AsyncOpenAI) -> int:
    try:
        stream = await sdk.chat.completions.create(
            model="o3", messages=MSGS, max_completion_tokens=MAX_OUTPUT, stream=True
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    async for _ in stream:
        pass
    return 200


async def ask_cut(sdk: AsyncOpenAI, responses: bool) -> int:
    """A non-streamed call (chat or Responses); its HTTP status."""
    try:
        if responses:
            await sdk.responses.create(model="o3", input="think hard", max_output_tokens=MAX_OUTPUT)
        else:
            await sdk.chat.completions.create(
                model="o3", messages=MSGS, max_completion_tokens=MAX_OUTPUT
            )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def gemini_billed(bills: list[dict[str, Any]], model: str = "gemini-2.5-flash") -> int:
    """What Google invoices, in nano-USD, from the ``usageMetadata`` it reported."""
    price = default_pricing_table().get(model)
    assert price is not None
    return sum(
        price.cost_nanos(
            Usage(
                input_tokens=b["promptTokenCount"],
                output_tokens=b["candidatesTokenCount"] + b.get("thoughtsTokenCount", 0),
            )
        )
        for b in bills
    )


async def generate(http: aiohttp.ClientSession, url: str, config: dict[str, Any], key: str) -> int:
    """A raw Gemini generateContent call to the proxy at ``url`` (google-genai would coerce
    the counts first)."""
    async with http.post(
        f"{url}/v1beta/models/gemini-2.5-flash:generateContent",
        json={
            "contents": [{"role": "user", "parts": [{"text": "eight ways"}]}],
            "generationConfig": config,
        },
        headers={"x-goog-api-key": key},
    ) as response:
        await response.read()
        return response.status

"""The built-in price list: OpenAI and Gemini chat and embedding models, and Claude models.

Prices are the providers' published standard-tier list prices in USD per million tokens
(openai.com/api/pricing, ai.google.dev/gemini-api/docs/pricing), text modality, as of
``AS_OF``. Operators refresh them without a release through an override file
(:meth:`PricingTable.with_overrides_file`). Audio input, batch and flex tiers are not listed.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Final

from aegis.core.pricing import ModelPrice, PricingTable

__all__ = ["AS_OF", "default_pricing_table"]

AS_OF: Final = date(2025, 11, 20)

D = Decimal

_OPENAI: Final = (
    # model, input, cached input, output, max output tokens, context window
    ("gpt-5", "1.25", "0.125", "10.00", 128_000, 400_000),
    ("gpt-5-mini", "0.25", "0.025", "2.00", 128_000, 400_000),
    ("gpt-5-nano", "0.05", "0.005", "0.40", 128_000, 400_000),
    ("gpt-5-chat-latest", "1.25", "0.125", "10.00", 16_384, 128_000),
    ("gpt-4.1", "2.00", "0.50", "8.00", 32_768, 1_047_576),
    ("gpt-4.1-mini", "0.40", "0.10", "1.60", 32_768, 1_047_576),
    ("gpt-4.1-nano", "0.10", "0.025", "0.40", 32_768, 1_047_576),
    ("gpt-4o", "2.50", "1.25", "10.00", 16_384, 128_000),
    ("gpt-4o-2024-05-13", "5.00", None, "15.00", 4_096, 128_000),
    ("gpt-4o-mini", "0.15", "0.075", "0.60", 16_384, 128_000),
    ("o1", "15.00", "7.50", "60.00", 100_000, 200_000),
    ("o3", "2.00", "0.50", "8.00", 100_000, 200_000),
    ("o3-mini", "1.10", "0.55", "4.40", 100_000, 200_000),
    ("o4-mini", "1.10", "0.275", "4.40", 100_000, 200_000),
    ("gpt-4-turbo", "10.00", None, "30.00", 4_096, 128_000),
    ("gpt-3.5-turbo", "0.50", None, "1.50", 4_096, 16_385),
)

_OPENAI_EMBEDDINGS: Final = (
    ("text-embedding-3-small", "0.02", 8_191),
    ("text-embedding-3-large", "0.13", 8_191),
    ("text-embedding-ada-002", "0.10", 8_191),
)

# Moderation is free at OpenAI; priced at zero so the Gate can admit (and receipt) it.
_OPENAI_MODERATION: Final = (
    ("omni-moderation-latest", "0", 32_768),
    ("omni-moderation-2024-09-26", "0", 32_768),
    ("text-moderation-latest", "0", 32_768),
    ("text-moderation-stable", "0", 32_768),
)

_OPENAI_ALIASES: Final = {
    "gpt-5-2025-08-07": "gpt-5",
    "gpt-5-mini-2025-08-07": "gpt-5-mini",
    "gpt-5-nano-2025-08-07": "gpt-5-nano",
    "gpt-4.1-2025-04-14": "gpt-4.1",
    "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14": "gpt-4.1-nano",
    "gpt-4o-2024-08-06": "gpt-4o",
    "gpt-4o-2024-11-20": "gpt-4o",
    "chatgpt-4o-latest": "gpt-4o",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "o1-2024-12-17": "o1",
    "o3-2025-04-16": "o3",
    "o3-mini-2025-01-31": "o3-mini",
    "o4-mini-2025-04-16": "o4-mini",
    "gpt-4-turbo-2024-04-09": "gpt-4-turbo",
    "gpt-3.5-turbo-0125": "gpt-3.5-turbo",
}

# Gemini bills every token of a prompt over 200k tokens at the long-context rate.
_GEMINI: Final = (
    # model, input, cached, output, max out, context, (long input, long cached, long output)
    ("gemini-3-pro-preview", "2.00", "0.20", "12.00", 65_536, 1_048_576, ("4.00", "0.40", "18.00")),
    ("gemini-2.5-pro", "1.25", "0.125", "10.00", 65_536, 1_048_576, ("2.50", "0.25", "15.00")),
    ("gemini-2.5-flash", "0.30", "0.03", "2.50", 65_536, 1_048_576, None),
    ("gemini-2.5-flash-lite", "0.10", "0.01", "0.40", 65_536, 1_048_576, None),
    ("gemini-2.0-flash", "0.10", "0.025", "0.40", 8_192, 1_048_576, None),
    ("gemini-2.0-flash-lite", "0.075", None, "0.30", 8_192, 1_048_576, None),
)

_GEMINI_EMBEDDINGS: Final = (("gemini-embedding-001", "0.15", 2_048),)

_GEMINI_ALIASES: Final = {
    "gemini-2.5-flash-preview-09-2025": "gemini-2.5-flash",
    "gemini-2.5-flash-lite-preview-09-2025": "gemini-2.5-flash-lite",
    "gemini-2.0-flash-001": "gemini-2.0-flash",
    "gemini-2.0-flash-lite-001": "gemini-2.0-flash-lite",
}


def _prices() -> list[ModelPrice]:
    prices = [
        ModelPrice(
            model=m,
            provider="openai",
            input_per_mtok=D(i),
            cached_input_per_mtok=None if c is None else D(c),
            output_per_mtok=D(o),
            max_output_tokens=max_out,
            context_window=ctx,
        )
        for m, i, c, o, max_out, ctx in _OPENAI
    ]
    prices += [
        ModelPrice(
            model=m, provider="openai", kind="embedding", input_per_mtok=D(i), context_window=ctx
        )
        for m, i, ctx in (*_OPENAI_EMBEDDINGS, *_OPENAI_MODERATION)
    ]
    for m, i, c, o, max_out, ctx, long in _GEMINI:
        prices.append(
            ModelPrice(
                model=m,
                provider="gemini",
                input_per_mtok=D(i),
                cached_input_per_mtok=None if c is None else D(c),
                output_per_mtok=D(o),
                max_output_tokens=max_out,
                context_window=ctx,
                long_context_threshold=None if long is None else 200_000,
                long_input_per_mtok=None if long is None else D(long[0]),
                long_cached_input_per_mtok=None if long is None else D(long[1]),
                long_output_per_mtok=None if long is None else D(long[2]),
            )
        )
    prices += [
        ModelPrice(
            model=m, provider="gemini", kind="embedding", input_per_mtok=D(i), context_window=ctx
        )
        for m, i, ctx in _GEMINI_EMBEDDINGS
    ]
    return prices


def default_pricing_table() -> PricingTable:
    """The built-in prices of current OpenAI, Gemini and Anthropic models."""
    return PricingTable(
        [*_prices(), *_anthropic_prices()],
        as_of=AS_OF,
        aliases={**_OPENAI_ALIASES, **_GEMINI_ALIASES, **_ANTHROPIC_ALIASES},
    )


# Anthropic (platform.claude.com/docs/en/about-claude/pricing and each model's overview page,
# checked 2026-12-03). Cache writes: 1.25x input for 5 minutes, 2x for an hour; web search:
# $10 per 1,000 searches. Claude Haiku 5.5 bills every token of a prompt over 100k tokens
# (cache reads and writes included) at the long-context rate. Claude Sonnet 4.5 retired on
# 2026-11-30 (listed so calls to it are refused as retired, not as unpriced).
_ANTHROPIC: Final = (
    # model, input, 5m write, 1h write, cache read, output, max out, context,
    # (long threshold, long input, long cached, long output), retired
    ("claude-fable-5-2", "8", "10", "16", "0.20", "40", 128_000, 1_000_000, None, None),
    ("claude-fable-5-1", "10", "12.50", "20", "0.25", "50", 128_000, 1_000_000, None, None),
    ("claude-fable-5", "10", "12.50", "20", "1", "50", 128_000, 1_000_000, None, None),
    ("claude-opus-5-5", "4", "5", "8", "0.20", "20", 128_000, 1_000_000, None, None),
    ("claude-opus-5", "5", "6.25", "10", "0.50", "25", 128_000, 1_000_000, None, None),
    ("claude-opus-4-8", "5", "6.25", "10", "0.50", "25", 128_000, 1_000_000, None, None),
    ("claude-opus-4-7", "5", "6.25", "10", "0.50", "25", 128_000, 1_000_000, None, None),
    ("claude-opus-4-6", "5", "6.25", "10", "0.50", "25", 128_000, 1_000_000, None, None),
    ("claude-opus-4-5", "5", "6.25", "10", "0.50", "25", 64_000, 200_000, None, None),
    ("claude-sonnet-5-5", "2", "2.50", "4", "0.10", "10", 128_000, 1_000_000, None, None),
    ("claude-sonnet-5", "2", "2.50", "4", "0.20", "10", 128_000, 1_000_000, None, None),
    ("claude-sonnet-4-6", "3", "3.75", "6", "0.30", "15", 64_000, 1_000_000, None, None),
    (
        "claude-sonnet-4-5",
        *("3", "3.75", "6", "0.30", "15", 64_000, 1_000_000),
        (200_000, "6", "0.60", "22.50"),
        date(2026, 11, 30),
    ),
    (
        "claude-haiku-5-5",
        *("0.10", "0.125", "0.20", "0.01", "0.50", 128_000, 1_000_000),
        (100_000, "0.50", "0.05", "2.50"),
        None,
    ),
    ("claude-haiku-4-5", "1", "1.25", "2", "0.10", "5", 64_000, 200_000, None, None),
)

_ANTHROPIC_ALIASES: Final = {
    "claude-opus-4-5-20251101": "claude-opus-4-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
    "claude-haiku-4-5-20251001": "claude-haiku-4-5",
}


def _anthropic_prices() -> list[ModelPrice]:
    return [
        ModelPrice(
            model=m,
            provider="anthropic",
            input_per_mtok=D(i),
            cache_write_per_mtok=D(w5),
            cache_write_1h_per_mtok=D(w1),
            cached_input_per_mtok=D(c),
            output_per_mtok=D(o),
            max_output_tokens=max_out,
            context_window=ctx,
            long_context_threshold=None if long is None else long[0],
            long_input_per_mtok=None if long is None else D(long[1]),
            long_cached_input_per_mtok=None if long is None else D(long[2]),
            long_output_per_mtok=None if long is None else D(long[3]),
            tool_calls_per_1k=(("web_search", D("10")),),
            retired=retired,
        )
        for m, i, w5, w1, c, o, max_out, ctx, long, retired in _ANTHROPIC
    ]

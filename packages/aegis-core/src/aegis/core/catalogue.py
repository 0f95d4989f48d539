"""The built-in price list: OpenAI and Gemini chat and embedding models.

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
    """The built-in prices of current OpenAI and Gemini models."""
    return PricingTable(_prices(), as_of=AS_OF, aliases={**_OPENAI_ALIASES, **_GEMINI_ALIASES})

"""The built-in price list: OpenAI and Gemini chat and embedding models, and Claude models.

Prices are the providers' published list prices in USD per million tokens (tool fees per
thousand calls), as of ``AS_OF``, from openai.com/api/pricing, platform.openai.com/docs/models
and /deprecations, ai.google.dev/gemini-api/docs/pricing, /optimization and /deprecations (as
far as their published text could be read; ``aegis-proxy prices --check`` compares this table
with a genai-prices or LiteLLM file). Operators refresh them without a release through an
override file (:meth:`PricingTable.with_overrides_file`).

Each provider is one block of rows plus the dimensions that differ per model (service tiers,
audio, input limits, lifecycle); a provider's block is turned into prices by its own function,
so another provider's block can be added beside these without touching them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Final

from aegis.core.pricing import ModelPrice, PricingTable, ServiceTier, TierPrice

__all__ = ["AS_OF", "default_pricing_table"]

AS_OF: Final = date(2026, 12, 3)

D = Decimal
HALF: Final = TierPrice(multiplier=D("0.5"))
"""Flex and Batch: half of every standard token price (both providers publish 50%)."""

# --- OpenAI -----------------------------------------------------------------------------------

_OPENAI: Final = (
    # model, input, cached input, output, max output tokens, context window
    ("gpt-5.5", "5.00", "0.50", "30.00", 128_000, 1_050_000),
    ("gpt-5.5-pro", "30.00", None, "180.00", 128_000, 1_050_000),
    ("gpt-5.4", "2.50", "0.25", "15.00", 128_000, 1_050_000),
    ("gpt-5.4-mini", "0.75", "0.075", "4.50", 128_000, 400_000),
    ("gpt-5.4-nano", "0.20", "0.02", "1.25", 128_000, 400_000),
    ("gpt-5.4-pro", "30.00", None, "180.00", 128_000, 1_050_000),
    ("gpt-5.2", "1.75", "0.175", "14.00", 128_000, 400_000),
    ("gpt-5.2-pro", "21.00", None, "168.00", 128_000, 400_000),
    ("gpt-5.1", "1.25", "0.125", "10.00", 128_000, 400_000),
    ("gpt-5", "1.25", "0.125", "10.00", 128_000, 400_000),
    ("gpt-5-mini", "0.25", "0.025", "2.00", 128_000, 400_000),
    ("gpt-5-nano", "0.05", "0.005", "0.40", 128_000, 400_000),
    ("gpt-5-pro", "15.00", None, "120.00", 272_000, 400_000),
    ("gpt-5-chat-latest", "1.25", "0.125", "10.00", 16_384, 128_000),
    ("gpt-4.1", "2.00", "0.50", "8.00", 32_768, 1_047_576),
    ("gpt-4.1-mini", "0.40", "0.10", "1.60", 32_768, 1_047_576),
    ("gpt-4.1-nano", "0.10", "0.025", "0.40", 32_768, 1_047_576),
    ("gpt-4o", "2.50", "1.25", "10.00", 16_384, 128_000),
    ("gpt-4o-2024-05-13", "5.00", None, "15.00", 4_096, 128_000),
    ("chatgpt-4o-latest", "5.00", None, "15.00", 16_384, 128_000),
    ("gpt-4o-mini", "0.15", "0.075", "0.60", 16_384, 128_000),
    ("gpt-4o-audio-preview", "2.50", None, "10.00", 16_384, 128_000),
    ("gpt-4o-mini-audio-preview", "0.15", None, "0.60", 16_384, 128_000),
    ("gpt-audio", "2.50", None, "10.00", 16_384, 128_000),
    ("gpt-audio-mini", "0.60", None, "2.40", 16_384, 128_000),
    ("o1", "15.00", "7.50", "60.00", 100_000, 200_000),
    ("o3-pro", "20.00", None, "80.00", 100_000, 200_000),
    ("o3", "2.00", "0.50", "8.00", 100_000, 200_000),
    ("o3-mini", "1.10", "0.55", "4.40", 100_000, 200_000),
    ("o4-mini", "1.10", "0.275", "4.40", 100_000, 200_000),
    ("gpt-4-turbo", "10.00", None, "30.00", 4_096, 128_000),
    ("gpt-3.5-turbo", "0.50", None, "1.50", 4_096, 16_385),
)

# Priority processing: OpenAI lists its own prices per model (1.7-2.5x standard). Token prices
# it does not list (audio, long context) bill at 2x, never below what priority may cost.
_OPENAI_PRIORITY: Final = {
    # model: (input, cached input, output)
    "gpt-5.5": ("12.50", "1.25", "75.00"),
    "gpt-5.4": ("5.00", "0.50", "30.00"),
    "gpt-5.2": ("3.50", "0.35", "28.00"),
    "gpt-5.1": ("2.50", "0.25", "20.00"),
    "gpt-5": ("2.50", "0.25", "20.00"),
    "gpt-5-mini": ("0.45", "0.045", "3.60"),
    "gpt-4.1": ("3.50", "0.875", "14.00"),
    "gpt-4.1-mini": ("0.70", "0.175", "2.80"),
    "gpt-4.1-nano": ("0.20", "0.05", "0.80"),
    "gpt-4o": ("4.25", "2.125", "17.00"),
    "gpt-4o-2024-05-13": ("8.75", None, "26.25"),
    "gpt-4o-mini": ("0.25", "0.125", "1.00"),
    "o3": ("3.50", "0.875", "14.00"),
    "o4-mini": ("2.00", "0.50", "8.00"),
}

# Prompts over 272k input tokens bill the whole call at 2x input and 1.5x output.
_OPENAI_LONG: Final = {
    # model: (long input, long cached input, long output)
    "gpt-5.5": ("10.00", "1.00", "45.00"),
    "gpt-5.5-pro": ("60.00", None, "270.00"),
    "gpt-5.4": ("5.00", "0.50", "22.50"),
    "gpt-5.4-pro": ("60.00", None, "270.00"),
}

_OPENAI_AUDIO: Final = {
    # model: (audio input, cached audio input, audio output)
    "gpt-4o-audio-preview": ("40.00", None, "80.00"),
    "gpt-4o-mini-audio-preview": ("10.00", None, "20.00"),
    "gpt-audio": ("32.00", None, "64.00"),
    "gpt-audio-mini": ("10.00", None, "20.00"),
}

# The input a request may carry where it is less than the context window (output shares it).
_OPENAI_INPUT_LIMITS: Final = {
    "gpt-5.1": 272_000,
    "gpt-5": 272_000,
    "gpt-5-mini": 272_000,
    "gpt-5-nano": 272_000,
    "gpt-5-pro": 128_000,
    "gpt-5.2": 272_000,
    "gpt-5.4-mini": 272_000,
    "gpt-5.4-nano": 272_000,
}

_OPENAI_LIFECYCLE: Final = {
    # model: (deprecated, retired, successor)
    "chatgpt-4o-latest": (date(2025, 11, 18), date(2026, 2, 17), "gpt-5.1-chat-latest"),
    "gpt-4o-audio-preview": (None, None, "gpt-audio"),
    "gpt-4o-mini-audio-preview": (None, None, "gpt-audio-mini"),
    "o1": (None, None, "o3"),
    "o3-mini": (None, None, "o4-mini"),
    "gpt-4-turbo": (None, None, "gpt-4.1"),
    "gpt-3.5-turbo": (None, None, "gpt-4.1-mini"),
}

# Web search: $10 per 1k calls on reasoning models; non-reasoning models (gpt-4o, gpt-4.1) run
# the preview tool at $25 per 1k (its result tokens free). Both answer a ``web_search_call``
# item, so the dearer fee is billed where the model can run either. File search: $2.50 per 1k.
_OPENAI_WEB_SEARCH_NON_REASONING: Final = ("gpt-4.1", "gpt-4o")

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
    "gpt-5.1-2025-11-13": "gpt-5.1",
    "gpt-5.1-chat-latest": "gpt-5-chat-latest",
    "gpt-5-2025-08-07": "gpt-5",
    "gpt-5-mini-2025-08-07": "gpt-5-mini",
    "gpt-5-nano-2025-08-07": "gpt-5-nano",
    "gpt-5-pro-2025-10-06": "gpt-5-pro",
    "gpt-4.1-2025-04-14": "gpt-4.1",
    "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14": "gpt-4.1-nano",
    "gpt-4o-2024-08-06": "gpt-4o",
    "gpt-4o-2024-11-20": "gpt-4o",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "gpt-4o-audio-preview-2025-06-03": "gpt-4o-audio-preview",
    "gpt-4o-mini-audio-preview-2024-12-17": "gpt-4o-mini-audio-preview",
    "o1-2024-12-17": "o1",
    "o3-pro-2025-06-10": "o3-pro",
    "o3-2025-04-16": "o3",
    "o3-mini-2025-01-31": "o3-mini",
    "o4-mini-2025-04-16": "o4-mini",
    "gpt-4-turbo-2024-04-09": "gpt-4-turbo",
    "gpt-3.5-turbo-0125": "gpt-3.5-turbo",
}


def _openai_fees(model: str) -> tuple[tuple[str, Decimal], ...]:
    non_reasoning = model.startswith(_OPENAI_WEB_SEARCH_NON_REASONING)
    return (("file_search", D("2.50")), ("web_search", D("25.00" if non_reasoning else "10.00")))


def _openai_prices() -> list[ModelPrice]:
    prices = []
    for m, i, c, o, max_out, ctx in _OPENAI:
        tiers: list[tuple[ServiceTier, TierPrice]] = [("batch", HALF), ("flex", HALF)]
        if m in _OPENAI_PRIORITY:
            pi, pc, po = _OPENAI_PRIORITY[m]
            priority = TierPrice(
                multiplier=D(2),
                input_per_mtok=D(pi),
                cached_input_per_mtok=None if pc is None else D(pc),
                output_per_mtok=D(po),
            )
            tiers.append(("priority", priority))
        long = _OPENAI_LONG.get(m)
        audio = _OPENAI_AUDIO.get(m)
        deprecated, retired, successor = _OPENAI_LIFECYCLE.get(m, (None, None, None))
        prices.append(
            ModelPrice(
                model=m,
                provider="openai",
                input_per_mtok=D(i),
                cached_input_per_mtok=None if c is None else D(c),
                output_per_mtok=D(o),
                max_output_tokens=max_out,
                context_window=ctx,
                max_input_tokens=_OPENAI_INPUT_LIMITS.get(m),
                long_context_threshold=None if long is None else 272_000,
                long_input_per_mtok=None if long is None else D(long[0]),
                long_cached_input_per_mtok=None if long is None or long[1] is None else D(long[1]),
                long_output_per_mtok=None if long is None else D(long[2]),
                audio_input_per_mtok=None if audio is None else D(audio[0]),
                cached_audio_input_per_mtok=None
                if audio is None or audio[1] is None
                else D(audio[1]),
                audio_output_per_mtok=None if audio is None else D(audio[2]),
                tool_calls_per_1k=_openai_fees(m),
                service_tiers=tuple(tiers),
                deprecated=deprecated,
                retired=retired,
                successor=successor,
            )
        )
    prices += [
        ModelPrice(
            model=m,
            provider="openai",
            kind="embedding",
            input_per_mtok=D(i),
            context_window=ctx,
            service_tiers=(("batch", HALF),),
        )
        for m, i, ctx in (*_OPENAI_EMBEDDINGS, *_OPENAI_MODERATION)
    ]
    return prices


# --- Gemini -----------------------------------------------------------------------------------

# Gemini bills every token of a prompt over 200k tokens at the long-context rate.
_GEMINI: Final = (
    # model, input, cached, output, max out, context, (long input, long cached, long output)
    ("gemini-3.5-flash", "1.50", "0.15", "9.00", 65_536, 1_048_576, None),
    ("gemini-3.5-flash-lite", "0.30", "0.03", "2.50", 65_536, 1_048_576, None),
    (
        "gemini-3.1-pro-preview",
        "2.00",
        "0.20",
        "12.00",
        65_536,
        1_048_576,
        ("4.00", "0.40", "18.00"),
    ),
    ("gemini-3-flash-preview", "0.50", "0.05", "3.00", 65_536, 1_048_576, None),
    ("gemini-3-pro-preview", "2.00", "0.20", "12.00", 65_536, 1_048_576, ("4.00", "0.40", "18.00")),
    ("gemini-2.5-pro", "1.25", "0.125", "10.00", 65_536, 1_048_576, ("2.50", "0.25", "15.00")),
    ("gemini-2.5-flash", "0.30", "0.03", "2.50", 65_536, 1_048_576, None),
    ("gemini-2.5-flash-lite", "0.10", "0.01", "0.40", 65_536, 1_048_576, None),
    ("gemini-2.0-flash", "0.10", "0.025", "0.40", 8_192, 1_048_576, None),
    ("gemini-2.0-flash-lite", "0.075", None, "0.30", 8_192, 1_048_576, None),
)

_GEMINI_AUDIO: Final = {
    # model: (audio input, cached audio input); the audio prices Google lists apart from text
    "gemini-3-flash-preview": ("1.00", "0.10"),
    "gemini-2.5-flash": ("1.00", "0.10"),
    "gemini-2.5-flash-lite": ("0.30", "0.03"),
    "gemini-2.0-flash": ("0.70", "0.175"),
}

_GEMINI_LIFECYCLE: Final = {
    # model: (deprecated, retired, successor)
    "gemini-3-pro-preview": (None, date(2026, 3, 9), "gemini-3.1-pro-preview"),
    "gemini-2.0-flash": (None, date(2026, 6, 1), "gemini-2.5-flash"),
    "gemini-2.0-flash-lite": (None, date(2026, 6, 1), "gemini-2.5-flash-lite"),
    # Third-party trackers report a shutdown on 2026-12-01 (calls routed to the successor at
    # its price); Google's own page could not be read for it, so these stay callable. Their
    # prices are not below the successors', so a routed call is not under-charged.
    "gemini-2.5-pro": (date(2026, 6, 17), None, "gemini-3.1-pro-preview"),
    "gemini-2.5-flash": (date(2026, 6, 17), None, "gemini-3.5-flash-lite"),
}

# Grounding with Google Search: Gemini 3 bills each search query ($14 per 1k), Gemini 2.x each
# grounded prompt ($35 per 1k). The free allowances (per day or month, per project) are not
# modelled: every grounded call is charged, so a budget never counts on a free quota it may
# already have used elsewhere.
_GEMINI_3_SEARCH: Final = (("web_search", D("14.00")),)
_GEMINI_2_GROUNDING: Final = (("grounding", D("35.00")),)

# Priority: Google lists 75-100% over standard; 2x is the top of that range.
_GEMINI_TIERS: Final = (("batch", HALF), ("flex", HALF), ("priority", TierPrice(multiplier=D(2))))

_GEMINI_EMBEDDINGS: Final = (("gemini-embedding-001", "0.15", 2_048),)

_GEMINI_ALIASES: Final = {
    "gemini-2.5-flash-preview-09-2025": "gemini-2.5-flash",
    "gemini-2.5-flash-lite-preview-09-2025": "gemini-2.5-flash-lite",
    "gemini-2.0-flash-001": "gemini-2.0-flash",
    "gemini-2.0-flash-lite-001": "gemini-2.0-flash-lite",
}


def _gemini_prices() -> list[ModelPrice]:
    prices = []
    for m, i, c, o, max_out, ctx, long in _GEMINI:
        audio = _GEMINI_AUDIO.get(m)
        deprecated, retired, successor = _GEMINI_LIFECYCLE.get(m, (None, None, None))
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
                audio_input_per_mtok=None if audio is None else D(audio[0]),
                cached_audio_input_per_mtok=None if audio is None else D(audio[1]),
                tool_calls_per_1k=_GEMINI_3_SEARCH
                if m.startswith("gemini-3")
                else _GEMINI_2_GROUNDING,
                service_tiers=_GEMINI_TIERS,
                deprecated=deprecated,
                retired=retired,
                successor=successor,
            )
        )
    prices += [
        ModelPrice(
            model=m,
            provider="gemini",
            kind="embedding",
            input_per_mtok=D(i),
            context_window=ctx,
            service_tiers=(("batch", HALF),),
        )
        for m, i, ctx in _GEMINI_EMBEDDINGS
    ]
    return prices


def _prices() -> list[ModelPrice]:
    return [*_openai_prices(), *_gemini_prices()]


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

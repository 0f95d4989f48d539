"""Real Gemini usage blocks, costed by hand from the published prices and by Aegis.

Each expectation is written out from the pricing page's numbers with Decimal (USD per 1M
tokens, grounding per 1k) and rounded up to the nano-USD once; none is computed by Aegis.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

from aegis.adapters.gemini import StreamUsage, service_tier_from_header, usage_from_response
from aegis.core import Usage, default_pricing_table

D = Decimal
M = D(1_000_000)
TABLE = default_pricing_table()


def nanos(usd: Decimal) -> int:
    return int((usd * 10**9).to_integral_value(rounding=ROUND_CEILING))


def charge(model: str, usage: Usage | None) -> int:
    assert usage is not None
    return TABLE.price(model).cost_nanos(usage)


def test_generate_audio_input_gemini_2_5_flash() -> None:
    response = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "..."}]}}],
        "usageMetadata": {
            "promptTokenCount": 3_210,
            "candidatesTokenCount": 120,
            "thoughtsTokenCount": 480,
            "totalTokenCount": 3_810,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 90},
                {"modality": "AUDIO", "tokenCount": 3_120},
            ],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 120}],
        },
        "modelVersion": "gemini-2.5-flash",
    }
    usage = usage_from_response(response)
    # 2.5 Flash: $0.30 text input, $1.00 audio input, $2.50 output (thinking included)
    expected = (D(90) * D("0.30") + D(3_120) * D("1.00") + D(600) * D("2.50")) / M
    assert charge("gemini-2.5-flash", usage) == nanos(expected)


def test_generate_cached_audio_gemini_2_5_flash() -> None:
    response = {
        "usageMetadata": {
            "promptTokenCount": 10_000,
            "cachedContentTokenCount": 6_000,
            "candidatesTokenCount": 50,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 2_000},
                {"modality": "AUDIO", "tokenCount": 8_000},
            ],
            "cacheTokensDetails": [
                {"modality": "TEXT", "tokenCount": 1_000},
                {"modality": "AUDIO", "tokenCount": 5_000},
            ],
        }
    }
    usage = usage_from_response(response)
    # text: 1000 uncached at $0.30, 1000 cached at $0.03; audio: 3000 uncached at $1.00,
    # 5000 cached at $0.10; output $2.50
    expected = (
        D(1_000) * D("0.30")
        + D(1_000) * D("0.03")
        + D(3_000) * D("1.00")
        + D(5_000) * D("0.10")
        + D(50) * D("2.50")
    ) / M
    assert charge("gemini-2.5-flash", usage) == nanos(expected)


def _grounded(queries: list[str]) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Spain won Euro 2024."}]},
                "groundingMetadata": {
                    "webSearchQueries": queries,
                    "searchEntryPoint": {"renderedContent": "<div></div>"},
                    "groundingChunks": [{"web": {"uri": "https://example.org", "title": "x"}}],
                },
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 150,
            "toolUsePromptTokenCount": 900,
            "thoughtsTokenCount": 200,
        },
    }


def test_grounding_gemini_2_5_flash_bills_per_prompt() -> None:
    usage = usage_from_response(_grounded(["who won euro 2024", "euro 2024 final score"]))
    # input includes the search results (toolUsePromptTokenCount); $35 per 1k grounded prompts
    expected = (D(912) * D("0.30") + D(350) * D("2.50")) / M + D("35.00") / 1_000
    assert charge("gemini-2.5-flash", usage) == nanos(expected)


def test_grounding_gemini_3_bills_per_search_query() -> None:
    usage = usage_from_response(_grounded(["who won euro 2024", "euro 2024 final score"]))
    # 3.5 Flash: $1.50 input, $9.00 output; $14 per 1k search queries, two queries
    expected = (D(912) * D("1.50") + D(350) * D("9.00")) / M + D(2) * D("14.00") / 1_000
    assert charge("gemini-3.5-flash", usage) == nanos(expected)


def test_stream_keeps_grounding_from_an_earlier_chunk_and_the_header_tier() -> None:
    grounded = _grounded(["q1"])
    first = {"candidates": grounded["candidates"]}
    last = {
        "candidates": [{"content": {"parts": [{"text": "."}]}, "finishReason": "STOP"}],
        "usageMetadata": grounded["usageMetadata"],
    }
    tracker = StreamUsage(service_tier=service_tier_from_header("priority"))
    tracker.observe(first)
    tracker.observe(last)
    usage = tracker.usage()
    # gemini-3.1-pro-preview at priority (2x): $4 input, $24 output; 1 query at $14 / 1k
    expected = (D(912) * D("4.00") + D(350) * D("24.00")) / M + D("14.00") / 1_000
    assert charge("gemini-3.1-pro-preview", usage) == nanos(expected)


def test_flex_tier_header_halves_gemini_2_5_pro_long_context() -> None:
    response = {"usageMetadata": {"promptTokenCount": 250_000, "candidatesTokenCount": 1_000}}
    usage = usage_from_response(response, service_tier=service_tier_from_header("flex"))
    # > 200k: $2.50 input, $15 output, halved at flex
    expected = (D(250_000) * D("1.25") + D(1_000) * D("7.50")) / M
    assert charge("gemini-2.5-pro", usage) == nanos(expected)


def test_embed_answer_carries_its_token_count() -> None:
    # batchEmbedContents: the Gemini API answers usageMetadata with the real count (google-genai
    # maps it to EmbedContentResponse.usage_metadata).
    response = {
        "embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}],
        "usageMetadata": {"promptTokenCount": 5_014, "totalTokenCount": 5_014},
    }
    expected = D(5_014) * D("0.15") / M
    assert charge("gemini-embedding-001", usage_from_response(response)) == nanos(expected)

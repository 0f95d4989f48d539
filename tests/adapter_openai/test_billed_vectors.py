"""Real OpenAI usage blocks, costed by hand from the published prices and by Aegis.

Each expectation is written out from the price page's numbers with Decimal (USD per 1M tokens,
tool calls per 1k) and rounded up to the nano-USD once; none is computed by Aegis' own code.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

from aegis.adapters.openai import (
    usage_from_chat_completion,
    usage_from_embeddings,
    usage_from_responses_object,
)
from aegis.core import Usage, default_pricing_table

D = Decimal
M = D(1_000_000)
TABLE = default_pricing_table()


def nanos(usd: Decimal) -> int:
    return int((usd * 10**9).to_integral_value(rounding=ROUND_CEILING))


def charge(model: str, usage: Usage | None) -> int:
    assert usage is not None
    return TABLE.price(model).cost_nanos(usage)


def test_chat_audio_in_and_out_gpt_4o_audio_preview() -> None:
    # A chat completion with audio input and an audio reply (shape of the API reference).
    response: dict[str, Any] = {
        "object": "chat.completion",
        "model": "gpt-4o-audio-preview-2025-06-03",
        "service_tier": "default",
        "usage": {
            "prompt_tokens": 1_214,
            "completion_tokens": 582,
            "total_tokens": 1_796,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 1_020},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 460,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }
    usage = usage_from_chat_completion(response)
    # text in $2.50, audio in $40, text out $10, audio out $80
    expected = (
        D(194) * D("2.50") + D(1_020) * D("40.00") + D(122) * D("10.00") + D(460) * D("80.00")
    ) / M
    assert charge("gpt-4o-audio-preview-2025-06-03", usage) == nanos(expected)


def test_chat_priority_tier_gpt_5() -> None:
    response = {
        "object": "chat.completion",
        "model": "gpt-5-2025-08-07",
        "service_tier": "priority",
        "usage": {
            "prompt_tokens": 20_480,
            "completion_tokens": 3_000,
            "prompt_tokens_details": {"cached_tokens": 8_192, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 2_048, "audio_tokens": 0},
        },
    }
    usage = usage_from_chat_completion(response)
    assert usage is not None
    assert usage.service_tier == "priority"
    # gpt-5 priority: $2.50 input, $0.25 cached, $20 output (reasoning billed as output)
    expected = (D(12_288) * D("2.50") + D(8_192) * D("0.25") + D(3_000) * D("20.00")) / M
    assert charge("gpt-5", usage) == nanos(expected)


def test_chat_flex_tier_o4_mini_is_half() -> None:
    response = {
        "service_tier": "flex",
        "usage": {"prompt_tokens": 1_000, "completion_tokens": 10_000},
    }
    expected = (D(1_000) * D("0.55") + D(10_000) * D("2.20")) / M
    assert charge("o4-mini", usage_from_chat_completion(response)) == nanos(expected)


def test_responses_o3_with_two_web_searches_and_a_file_search() -> None:
    response = {
        "object": "response",
        "model": "o3-2025-04-16",
        "service_tier": "default",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "web_search_call", "id": "ws_2", "status": "completed"},
            {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"]},
            {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
        ],
        "usage": {
            "input_tokens": 9_210,
            "input_tokens_details": {"cached_tokens": 1_024},
            "output_tokens": 1_830,
            "output_tokens_details": {"reasoning_tokens": 1_216},
            "total_tokens": 11_040,
        },
    }
    usage = usage_from_responses_object(response)
    assert usage is not None
    assert usage.tool_calls == (("file_search", 1), ("web_search", 2))
    # o3: $2 input, $0.50 cached, $8 output; web search $10 / 1k calls, file search $2.50 / 1k
    expected = (
        (D(8_186) * D("2.00") + D(1_024) * D("0.50") + D(1_830) * D("8.00")) / M
        + D(2) * D("10.00") / 1_000
        + D(1) * D("2.50") / 1_000
    )
    assert charge("o3", usage) == nanos(expected)


def test_responses_web_search_on_gpt_4_1_bills_the_preview_fee() -> None:
    response = {
        "output": [{"type": "web_search_call", "id": "ws_1", "status": "completed"}],
        "usage": {"input_tokens": 300, "output_tokens": 200},
    }
    expected = (D(300) * D("2.00") + D(200) * D("8.00")) / M + D("25.00") / 1_000
    assert charge("gpt-4.1", usage_from_responses_object(response)) == nanos(expected)


def test_embeddings_usage_text_embedding_3_small() -> None:
    response = {"object": "list", "usage": {"prompt_tokens": 5_012, "total_tokens": 5_012}}
    expected = D(5_012) * D("0.02") / M
    assert charge("text-embedding-3-small", usage_from_embeddings(response)) == nanos(expected)


def test_chatgpt_4o_latest_has_its_own_price() -> None:
    usage = usage_from_chat_completion(
        {"usage": {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}}
    )
    assert charge("chatgpt-4o-latest", usage) == nanos(D("5.00") + D("15.00"))


def test_unknown_tier_bills_as_priority_not_standard() -> None:
    usage = usage_from_chat_completion(
        {"service_tier": "turbo-2027", "usage": {"prompt_tokens": 10, "completion_tokens": 1}}
    )
    assert usage is not None
    assert usage.service_tier == "priority"

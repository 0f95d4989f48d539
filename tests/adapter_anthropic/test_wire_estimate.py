"""The pure wire functions over Messages request bodies: worst-case estimates and the rewrite."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from aegis.adapters.anthropic import (
    BUILTIN_TOOL_TOKENS_UPPER_BOUND,
    IMAGE_TOKENS_UPPER_BOUND,
    TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND,
    InvalidRequestBody,
    estimate_count_tokens_request,
    estimate_messages_request,
    rewrite_messages_request,
)
from aegis.core import MESSAGE_OVERHEAD_TOKENS, REPLY_OVERHEAD_TOKENS, default_pricing_table


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1_000,
        "messages": [{"role": "user", "content": "hello"}],
        **extra,
    }


def test_plain_text_is_bounded_by_its_utf8_length_plus_overheads() -> None:
    estimate = estimate_messages_request(
        body(
            system="Be brief.",
            messages=[
                {"role": "user", "content": "héllo"},
                {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
                {"role": "user", "content": "ok"},
            ],
        )
    )
    overheads = REPLY_OVERHEAD_TOKENS + 4 * MESSAGE_OVERHEAD_TOKENS  # three turns and the system
    assert estimate.input_tokens == overheads + len("héllo".encode()) + 2 + 2 + len("Be brief.")
    assert estimate.input_is_bounded
    assert (estimate.max_tokens, estimate.output_tokens) == (1_000, 1_000)
    assert not estimate.stream


def test_system_blocks_tools_tool_use_and_results_are_all_counted() -> None:
    tool = {"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object"}}
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 C"}
    estimate = estimate_messages_request(
        body(
            system=[{"type": "text", "text": "Be brief."}],
            tools=[tool],
            messages=[
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [call]},
                {"role": "user", "content": [result]},
            ],
        )
    )
    expected = (
        REPLY_OVERHEAD_TOKENS
        + 4 * MESSAGE_OVERHEAD_TOKENS
        + len("weather?")
        + len(json.dumps(call, separators=(",", ":")))
        + len("sunny, 21 C")
        + len('"toolu_1"')
        + len("Be brief.")
        + TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND
        + len(json.dumps(tool, separators=(",", ":")))
    )
    assert estimate.input_tokens == expected
    assert estimate.input_is_bounded


def test_an_image_costs_its_ceiling_whatever_its_bytes() -> None:
    data = base64.b64encode(b"\x89PNG" + b"\0" * 10_000_000).decode()  # a huge payload
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    url = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.png"}}
    estimate = estimate_messages_request(
        body(messages=[{"role": "user", "content": [image, url, {"type": "text", "text": "?"}]}])
    )
    assert estimate.input_tokens == (
        REPLY_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS + 2 * IMAGE_TOKENS_UPPER_BOUND + 1
    )
    assert estimate.input_is_bounded
    # Anthropic's own formula at its largest resize (2576 x 1449, ~16:9): below the bound.
    assert Decimal(2576 * 1449) / 750 < IMAGE_TOKENS_UPPER_BOUND


def test_pdfs_and_files_are_unbounded_text_documents_are_measured() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"},
    }
    text = {
        "type": "document",
        "title": "Notes",
        "source": {"type": "text", "media_type": "text/plain", "data": "alpha beta"},
    }
    content = {
        "type": "document",
        "source": {"type": "content", "content": [{"type": "text", "text": "gamma"}]},
    }
    measured = estimate_messages_request(
        body(messages=[{"role": "user", "content": [text, content]}])
    )
    assert measured.input_is_bounded
    assert measured.input_tokens == (
        REPLY_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS + len("Notes") + 10 + 5
    )
    for source in (
        pdf,
        {"type": "document", "source": {"type": "url", "url": "https://example.invalid/a.pdf"}},
        {"type": "document", "source": {"type": "file", "file_id": "file_1"}},
    ):
        estimate = estimate_messages_request(body(messages=[{"role": "user", "content": [source]}]))
        assert not estimate.input_is_bounded
        assert estimate.input_tokens_within(200_000) == 200_000


def test_server_tools_mcp_and_containers_make_the_input_unbounded() -> None:
    client_tool = {"type": "bash_20250124", "name": "bash"}
    bounded = estimate_messages_request(body(tools=[client_tool]))
    assert bounded.input_is_bounded
    assert bounded.input_tokens >= BUILTIN_TOOL_TOKENS_UPPER_BOUND
    for extra in (
        {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]},
        {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
        {"mcp_servers": [{"type": "url", "url": "https://mcp.invalid", "name": "m"}]},
        {"container": "container_1"},
    ):
        assert not estimate_messages_request(body(**extra)).input_is_bounded, extra


def test_the_bound_never_exceeds_the_context_window() -> None:
    estimate = estimate_messages_request(body(messages=[{"role": "user", "content": "x" * 500}]))
    assert estimate.input_tokens_within(100) == 100
    assert estimate.input_tokens_within(0) == estimate.input_tokens


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 1.0}, "max_tokens"),
        ({"max_tokens": "100"}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 2**31}, "max_tokens"),
        ({"model": ""}, "model"),
        ({"model": 3}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "messages.0.content.0"),
        ({"tools": {"name": "x"}}, "tools"),
        ({"thinking": "yes"}, "thinking"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048.0}}, "thinking.budget_tokens"),
        ({"stream": "true"}, "stream"),
    ],
)
def test_what_the_api_would_refuse_or_cannot_be_bounded_is_refused(
    change: dict[str, Any], param: str
) -> None:
    request = body(**change)
    if change.get("max_tokens", 1) is None:
        del request["max_tokens"]
    with pytest.raises(InvalidRequestBody) as caught:
        estimate_messages_request(request)
    assert caught.value.param == param


def test_thinking_is_output_bounded_by_max_tokens_or_with_interleaving_by_their_sum() -> None:
    manual = estimate_messages_request(
        body(max_tokens=16_000, thinking={"type": "enabled", "budget_tokens": 10_000})
    )
    assert (manual.thinking_budget_tokens, manual.output_tokens) == (10_000, 16_000)
    adaptive = estimate_messages_request(body(thinking={"type": "adaptive"}))
    assert (adaptive.thinking_budget_tokens, adaptive.output_tokens) == (None, 1_000)
    interleaved = estimate_messages_request(
        body(max_tokens=4_000, thinking={"type": "enabled", "budget_tokens": 20_000})
    )
    assert interleaved.output_tokens == 24_000


def test_cache_control_anywhere_marks_cache_writes_and_reserves_at_the_1h_price() -> None:
    price = default_pricing_table().price("claude-sonnet-4-6")
    plain = estimate_messages_request(body())
    assert not plain.cache_writes
    assert plain.reserved_input_tokens(price) == plain.input_tokens
    marked = [
        body(system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]),
        body(tools=[{"name": "t", "input_schema": {}, "cache_control": {"type": "ephemeral"}}]),
        body(cache_control={"type": "ephemeral"}),
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t",
                            "content": [
                                {
                                    "type": "text",
                                    "text": "x",
                                    "cache_control": {"type": "ephemeral"},
                                }
                            ],
                        }
                    ],
                }
            ]
        ),
    ]
    for request in marked:
        estimate = estimate_messages_request(request)
        assert estimate.cache_writes
        # claude-sonnet-4-6: $6 1-hour writes over $3 input.
        assert estimate.reserved_input_tokens(price) == 2 * estimate.input_tokens


def test_count_tokens_bodies_need_no_max_tokens() -> None:
    request = body()
    del request["max_tokens"]
    estimate = estimate_count_tokens_request(request)
    assert estimate.model == "claude-sonnet-4-6"
    assert estimate.input_tokens == REPLY_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS + 5
    with pytest.raises(InvalidRequestBody):
        estimate_count_tokens_request({"model": "m", "messages": []})


# -- the rewrite ------------------------------------------------------------------------


def test_a_body_that_fits_is_sent_as_it_is() -> None:
    request = body()
    original = json.dumps(request).encode()
    rewrite = rewrite_messages_request(
        request, estimate_messages_request(request), max_output_tokens=1_000
    )
    assert rewrite.body is request
    assert not rewrite.changed
    assert rewrite.to_bytes(original) is original


def test_a_lowered_limit_changes_max_tokens_only() -> None:
    request = body(temperature=0.5, metadata={"user_id": "u"})
    rewrite = rewrite_messages_request(
        request, estimate_messages_request(request), max_output_tokens=300
    )
    assert rewrite.changed
    assert rewrite.body == {**request, "max_tokens": 300}
    assert request["max_tokens"] == 1_000  # the caller's body is untouched
    assert json.loads(rewrite.to_bytes(b"{}")) == {**request, "max_tokens": 300}


def test_a_limit_below_the_thinking_budget_lowers_the_budget_too() -> None:
    request = body(max_tokens=16_000, thinking={"type": "enabled", "budget_tokens": 10_000})
    estimate = estimate_messages_request(request)
    fits = rewrite_messages_request(request, estimate, max_output_tokens=12_000)
    assert fits.body["max_tokens"] == 12_000
    assert fits.body["thinking"] == {"type": "enabled", "budget_tokens": 10_000}
    lowered = rewrite_messages_request(request, estimate, max_output_tokens=5_000)
    assert lowered.body["max_tokens"] == 5_000
    assert lowered.body["thinking"] == {"type": "enabled", "budget_tokens": 4_999}
    with pytest.raises(InvalidRequestBody) as caught:
        rewrite_messages_request(request, estimate, max_output_tokens=1_000)
    assert caught.value.param == "thinking.budget_tokens"


def test_interleaved_thinking_keeps_its_share_of_a_lowered_limit() -> None:
    request = body(max_tokens=4_000, thinking={"type": "enabled", "budget_tokens": 12_000})
    rewrite = rewrite_messages_request(
        request, estimate_messages_request(request), max_output_tokens=8_000
    )
    sent_max, sent_budget = rewrite.body["max_tokens"], rewrite.body["thinking"]["budget_tokens"]
    assert (sent_max, sent_budget) == (2_000, 6_000)
    again = estimate_messages_request(rewrite.body)
    assert again.output_tokens <= 8_000


def rewritten(original: bytes, limit: int) -> bytes:
    request = json.loads(original)
    return rewrite_messages_request(
        request, estimate_messages_request(request), max_output_tokens=limit
    ).to_bytes(original)


def test_to_bytes_replaces_only_the_changed_value_in_the_clients_bytes() -> None:
    original = (
        b'{ "model" : "claude-sonnet-4-6",\n  "max_tokens": 1000 ,'
        b' "messages": [{"role": "user", "content": "caf\\u00e9 \xc3\xa9 max_tokens: 1000"}],'
        b' "metadata": {"max_tokens": 5}}'
    )
    out = rewritten(original, 300)
    assert out == original.replace(b'"max_tokens": 1000 ', b'"max_tokens": 300 ')
    assert json.loads(out)["max_tokens"] == 300


def test_to_bytes_splices_a_lowered_thinking_budget_too() -> None:
    original = (
        b'{"model":"claude-sonnet-4-6","max_tokens":16000,"messages":[{"role":"user",'
        b'"content":"hi"}],"thinking": {"type": "enabled", "budget_tokens": 10000}}'
    )
    out = json.loads(rewritten(original, 5_000))
    assert (out["max_tokens"], out["thinking"]) == (
        5_000,
        {"type": "enabled", "budget_tokens": 4_999},
    )


@pytest.mark.parametrize(
    "original",
    [
        # A key given twice: the parsed body (the last value, as estimated) is sent instead.
        b'{"model":"claude-sonnet-4-6","max_tokens":5,"max_tokens":1000,'
        b'"messages":[{"role":"user","content":"hi"}]}',
        # A nested key of the same name only: the top-level one is what counts.
        b'{"model":"claude-sonnet-4-6","metadata":{"max_tokens":1},"max_tokens":1000,'
        b'"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}',
    ],
)
def test_to_bytes_serializes_anew_when_the_bytes_are_ambiguous(original: bytes) -> None:
    out = rewritten(original, 300)
    assert json.loads(out)["max_tokens"] == 300
    assert out.count(b'"max_tokens":1000') == 0


def test_to_bytes_of_bytes_that_are_not_one_object_serializes_the_body() -> None:
    request = body()
    rewrite = rewrite_messages_request(
        request, estimate_messages_request(request), max_output_tokens=300
    )
    for original in (json.dumps(request).encode() + b" {}", b"\xff\xfe", b"[]"):
        assert json.loads(rewrite.to_bytes(original)) == {**request, "max_tokens": 300}

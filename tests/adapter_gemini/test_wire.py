"""The pure wire-format functions: estimates, output limits, usage, SSE parsing, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aegis.adapters.gemini import (
    MEDIA_PART_MIN_TOKENS,
    GenerateEstimate,
    OutputLimits,
    SseParser,
    StreamUsage,
    WireError,
    estimate_embed_content,
    estimate_generate_content,
    is_thinking_model,
    openai_error_body,
    output_limits,
    parse_error_body,
    usage_from_response,
    with_output_limits,
)
from aegis.core import Usage

LIMITS = {"model_max_output_tokens": 65_536, "context_window": 1_048_576}


def test_estimate_bounds_text_and_uses_request_limits() -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "héllo wörld"}]}],
        "systemInstruction": {"parts": [{"text": "be nice"}]},
        "generationConfig": {"maxOutputTokens": 100, "candidateCount": 2},
    }
    estimate = estimate_generate_content(body, model="gemini-2.0-flash", **LIMITS)
    # 13 UTF-8 bytes + 7, plus per-message and reply overheads
    assert estimate.input_tokens >= 13 + 7
    assert estimate.input_tokens < 13 + 7 + 100
    assert estimate == GenerateEstimate(estimate.input_tokens, 100, 0, 2)
    assert estimate.output_tokens == 200


@pytest.mark.parametrize(
    ("model", "thinking", "allowance"),
    [
        # No budget on a 2.5 model: what the request sends (maxOutputTokens 10), fitted to the
        # model's budget range, plus the 1/32 overshoot margin; the body then carries it.
        ("gemini-2.5-flash", None, 10 + 1),
        ("gemini-2.5-flash-lite", None, 512 + 16),
        ("models/gemini-2.5-pro", {"thinkingBudget": -1}, 65_536),
        ("gemini-2.5-flash", {"thinkingBudget": 0}, 0),
        ("gemini-2.5-flash", {"thinking_budget": 512}, 512 + 16),
        ("gemini-3-pro-preview", {"thinkingLevel": "low"}, 65_536),
        ("gemini-2.0-flash", None, 0),
        ("gemini-2.0-flash-thinking-exp", None, 65_536),
        ("some-future-model", None, 65_536),
    ],
)
def test_thinking_allowance(model: str, thinking: dict[str, Any] | None, allowance: int) -> None:
    config: dict[str, Any] = {"maxOutputTokens": 10}
    if thinking is not None:
        config["thinkingConfig"] = thinking
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config}
    estimate = estimate_generate_content(body, model=model, **LIMITS)
    assert estimate.thinking_tokens == allowance
    assert estimate.output_tokens == 10 + allowance
    assert is_thinking_model(model) == (model != "gemini-2.0-flash")


def test_unseen_inputs_are_bounded_by_the_context_window_or_marked_for_the_gate() -> None:
    image = {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
    small = estimate_generate_content({"contents": [{"parts": [image]}]}, model="m", **LIMITS)
    assert small.input_tokens >= MEDIA_PART_MIN_TOKENS
    assert small.input_is_bounded
    file_part = {"fileData": {"fileUri": "gs://b/o", "mimeType": "video/mp4"}}
    whole = estimate_generate_content({"contents": [{"parts": [file_part]}]}, model="m", **LIMITS)
    assert whole.input_tokens == 1_048_576
    # What the body makes the model read without holding it: the Gate adds the policy's
    # allowance for it (at most up to the input limit).
    for body in (
        {"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/abc"},
        {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]},
        {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"code_execution": {}}]},
    ):
        estimate = estimate_generate_content(body, model="m", **LIMITS)
        assert not estimate.input_is_bounded
        assert estimate.input_tokens < 1_000


def test_estimate_tolerates_any_json() -> None:
    for body in ({}, {"contents": "x"}, {"contents": [1, None, {"parts": "y"}]}, {"tools": 3}):
        estimate = estimate_generate_content(body, model="m", **LIMITS)
        assert estimate.input_tokens >= 0


def test_embed_estimate_counts_every_request_and_title() -> None:
    single = {"content": {"parts": [{"text": "abcd"}]}, "title": "xy"}
    batch = {"requests": [single, single]}
    one = estimate_embed_content(single)
    assert one >= 6
    assert estimate_embed_content(batch) == 2 * one
    assert (
        estimate_embed_content(
            {"requests": [{"content": {"parts": [{"text": "a" * 5000}]}}]}, context_window=2048
        )
        == 2048
    )


def test_output_limits_keep_the_request_when_the_grant_covers_it() -> None:
    estimate = GenerateEstimate(input_tokens=10, max_output_tokens=100, thinking_tokens=50)
    assert output_limits(estimate, 150) == OutputLimits(100, None)
    assert output_limits(estimate, 10_000) == OutputLimits(100, None)


@pytest.mark.parametrize("granted", [16, 17, 100, 149])
def test_clamped_output_limits_never_exceed_the_grant(granted: int) -> None:
    estimate = GenerateEstimate(10, max_output_tokens=100, thinking_tokens=50, candidate_count=2)
    limits = output_limits(estimate, granted)
    assert limits.thinking_budget is not None
    assert limits.max_output_tokens >= 1
    assert 2 * (limits.max_output_tokens + limits.thinking_budget) <= granted
    plain = output_limits(GenerateEstimate(10, 100, 0), granted)
    assert plain == OutputLimits(min(granted, 100), None)


def test_with_output_limits_writes_camel_case_and_drops_snake_twins() -> None:
    body = {
        "contents": [],
        "generation_config": {
            "max_output_tokens": 500,
            "temperature": 1,
            "thinking_config": {"thinking_level": "high", "include_thoughts": True},
        },
    }
    out = with_output_limits(body, OutputLimits(40, 20))
    assert out == {
        "contents": [],
        "generationConfig": {
            "temperature": 1,
            "maxOutputTokens": 40,
            "thinkingConfig": {"include_thoughts": True, "thinkingBudget": 20},
        },
    }
    assert "generationConfig" not in body  # the input is not modified
    assert with_output_limits({}, OutputLimits(7, None)) == {
        "generationConfig": {"maxOutputTokens": 7}
    }


def test_usage_maps_every_field() -> None:
    response = {
        "usageMetadata": {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "toolUsePromptTokenCount": 5,
            "totalTokenCount": 155,
        }
    }
    assert usage_from_response(response) == Usage(
        input_tokens=105, cached_input_tokens=60, output_tokens=50, reasoning_tokens=30
    )
    assert usage_from_response({}) is None
    with pytest.raises(WireError):
        usage_from_response({"usageMetadata": {"promptTokenCount": "many"}})


def test_stream_usage_takes_the_last_cumulative_report() -> None:
    tracker = StreamUsage()
    for candidates in (1, 5, 9):
        tracker.observe(
            {
                "candidates": [{"content": {"parts": [{"text": "abcd"}]}}],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": candidates},
            }
        )
    tracker.observe({"candidates": [{"content": {"parts": [{"text": "z"}]}}]})  # no usage
    assert tracker.reported == Usage(input_tokens=7, output_tokens=9)
    assert tracker.delivered_tokens == 13
    assert tracker.upper_bound(1000) == Usage(input_tokens=7, output_tokens=13)
    assert StreamUsage().upper_bound(1000) == Usage(input_tokens=1000)


EVENTS = [
    {"candidates": [{"content": {"parts": [{"text": "héllo"}]}}]},
    {
        "candidates": [{"content": {"parts": [{"text": "wörld ✓"}]}}],
        "usageMetadata": {"promptTokenCount": 1},
    },
]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_parser_at_every_split_point(newline: bytes) -> None:
    body = b"".join(
        b": comment"
        + newline
        + b"event: message"
        + newline
        + b"data: "
        + json.dumps(e, ensure_ascii=False).encode()
        + newline
        + newline
        for e in EVENTS
    )
    for cut in range(len(body) + 1):
        parser = SseParser()
        events = parser.feed(body[:cut]) + parser.feed(body[cut:])
        assert events == EVENTS
        assert not parser.has_partial_event


def test_sse_parser_byte_by_byte_and_multiline_data() -> None:
    body = b'data: {"a":\ndata: 1}\n\ndata: {"b": 2}\n\ndata: {"c"'
    parser = SseParser()
    events = [e for i in range(len(body)) for e in parser.feed(body[i : i + 1])]
    assert events == [{"a": 1}, {"b": 2}]
    assert parser.has_partial_event


def test_sse_parser_rejects_non_json_events() -> None:
    with pytest.raises(WireError):
        SseParser().feed(b"data: not json\n\n")
    with pytest.raises(WireError):
        SseParser().feed(b"data: [1]\n\n")


@pytest.mark.parametrize(
    ("status", "body", "message", "google_status"),
    [
        (
            429,
            b'{"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED"}}',
            "Quota",
            "RESOURCE_EXHAUSTED",
        ),
        (
            400,
            b'[{"error": {"code": 400, "message": "Bad", "status": "INVALID_ARGUMENT"}}]',
            "Bad",
            "INVALID_ARGUMENT",
        ),
        (
            503,
            b"<html>Service Unavailable</html>",
            "<html>Service Unavailable</html>",
            "UNAVAILABLE",
        ),
        (500, b"", "upstream error 500", "INTERNAL"),
        (418, {"message": "teapot"}, "teapot", "UNKNOWN"),
    ],
)
def test_parse_error_body(status: int, body: Any, message: str, google_status: str) -> None:
    error = parse_error_body(status, body)
    assert (error.http_status, error.message, error.status) == (status, message, google_status)


@pytest.mark.parametrize(
    ("status", "openai_status", "kind"),
    [
        (400, 400, "invalid_request_error"),
        (401, 401, "authentication_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
        (429, 429, "rate_limit_error"),
        (500, 500, "server_error"),
        (503, 503, "server_error"),
        (200, 502, "server_error"),
    ],
)
def test_openai_error_body(status: int, openai_status: int, kind: str) -> None:
    code, body = openai_error_body(parse_error_body(status, b'{"error": {"message": "m"}}'))
    assert code == openai_status
    assert body["error"]["type"] == kind
    assert body["error"]["message"] == "m"
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_a_1024_token_call_reserves_its_own_bound_and_sends_it_as_the_thinking_budget() -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": 1024}}
    estimate = estimate_generate_content(body, model="gemini-2.5-flash", **LIMITS)
    # Was 1,024 + 65,536; now the thinking the request is held to (1,024) plus its margin.
    assert estimate.output_tokens == 1024 + 1024 + 32
    limits = output_limits(estimate, estimate.output_tokens)
    sent = with_output_limits(body, limits)
    assert sent["generationConfig"] == {
        "maxOutputTokens": 1024,
        "thinkingConfig": {"thinkingBudget": 1024},
    }
    # Clamped: the thinking budget sent leaves the margin inside the grant.
    clamped = output_limits(estimate, 1_000)
    assert clamped.thinking_budget is not None
    margin = -(-clamped.thinking_budget // 32)
    assert clamped.max_output_tokens + clamped.thinking_budget + margin <= 1_000

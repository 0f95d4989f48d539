"""Worst-case estimates from request bodies: pure functions over the wire JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from aegis.adapters.openai import (
    AUDIO_BASE64_CHARS_PER_TOKEN,
    IMAGE_TOKENS_UPPER_BOUND,
    LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND,
    SCHEMA_OVERHEAD_TOKENS,
    InvalidRequestBody,
    estimate_chat_request,
    estimate_embeddings_request,
    estimate_responses_request,
)
from aegis.core import MESSAGE_OVERHEAD_TOKENS, REPLY_OVERHEAD_TOKENS

OVERHEAD = MESSAGE_OVERHEAD_TOKENS


def chat(*messages: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": list(messages), **extra}


def test_text_is_bounded_by_its_utf8_length_plus_overheads() -> None:
    est = estimate_chat_request(chat({"role": "user", "content": "héllo"}))
    # "user" is read too; "héllo" is 6 bytes.
    assert est.input_tokens == REPLY_OVERHEAD_TOKENS + OVERHEAD + 4 + 6
    assert est.max_output_tokens is None
    assert est.n == 1
    assert est.input_is_bounded
    assert not est.stream


def test_every_message_adds_its_overhead() -> None:
    one = estimate_chat_request(chat({"role": "user", "content": "a"}))
    two = estimate_chat_request(
        chat({"role": "user", "content": "a"}, {"role": "user", "content": "a"})
    )
    assert two.input_tokens - one.input_tokens == OVERHEAD + 4 + 1


def test_content_parts_images_and_audio_have_fixed_bounds() -> None:
    audio = "A" * 1000
    est = estimate_chat_request(
        chat(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64," + "x" * 5000},
                    },
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}},
                ],
            }
        )
    )
    expected = (
        4
        + IMAGE_TOKENS_UPPER_BOUND
        + LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND
        + len(audio) // AUDIO_BASE64_CHARS_PER_TOKEN
        + 1
    )
    # The image's base64 data is not text the model reads: only the fixed bound counts.
    assert est.input_tokens == REPLY_OVERHEAD_TOKENS + OVERHEAD + 4 + expected
    assert est.input_is_bounded


def test_file_parts_and_hidden_references_are_unbounded() -> None:
    with_file = chat(
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-123"}}]}
    )
    assert not estimate_chat_request(with_file).input_is_bounded
    earlier_audio = chat({"role": "assistant", "audio": {"id": "audio_1"}})
    assert not estimate_chat_request(earlier_audio).input_is_bounded
    searched = chat({"role": "user", "content": "news?"}, web_search_options={})
    assert not estimate_chat_request(searched).input_is_bounded


def test_tools_and_response_format_count_their_json() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    schema = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {}}},
    }
    base = estimate_chat_request(chat({"role": "user", "content": "hi"}))
    est = estimate_chat_request(
        chat({"role": "user", "content": "hi"}, tools=tools, response_format=schema)
    )
    tools_json = len(json.dumps(tools[0], separators=(",", ":")))
    schema_json = len(json.dumps(schema, separators=(",", ":")))
    assert est.input_tokens - base.input_tokens == (
        tools_json + schema_json + 2 * SCHEMA_OVERHEAD_TOKENS
    )
    # A plain-text response format adds nothing.
    text = estimate_chat_request(
        chat({"role": "user", "content": "hi"}, response_format={"type": "text"})
    )
    assert text.input_tokens == base.input_tokens


def test_tool_calls_in_history_count() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    base = estimate_chat_request(chat({"role": "assistant", "content": None}))
    est = estimate_chat_request(chat({"role": "assistant", "content": None, "tool_calls": calls}))
    assert est.input_tokens - base.input_tokens == len(json.dumps(calls, separators=(",", ":")))


def test_output_limit_fields_and_n() -> None:
    msg = {"role": "user", "content": "x"}
    assert estimate_chat_request(chat(msg, max_tokens=50)).max_output_tokens == 50
    assert estimate_chat_request(chat(msg, max_completion_tokens=70)).max_output_tokens == 70
    both = estimate_chat_request(chat(msg, max_tokens=90, max_completion_tokens=70))
    assert both.max_output_tokens == 90
    est = estimate_chat_request(chat(msg, max_completion_tokens=100, n=3))
    assert est.output_tokens(16_384) == 300
    # Without a limit, the model's maximum is the worst case of every choice.
    assert estimate_chat_request(chat(msg, n=2)).output_tokens(16_384) == 32_768


def test_predicted_output_is_extra_output() -> None:
    est = estimate_chat_request(
        chat(
            {"role": "user", "content": "edit"},
            max_completion_tokens=10,
            prediction={"type": "content", "content": "abcdef"},
        )
    )
    assert est.extra_output_tokens == 6
    assert est.output_tokens(999) == 16


def test_stream_flag() -> None:
    assert estimate_chat_request(chat({"role": "user", "content": "x"}, stream=True)).stream


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": [3]}]}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 129}, "n"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": True}, "n"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, None),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}, None),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": {}}, "tools"),
    ],
)
def test_bodies_that_cannot_be_bounded_are_refused(body: dict[str, Any], param: str | None) -> None:
    with pytest.raises(InvalidRequestBody) as caught:
        estimate_chat_request(body)
    if param is not None:
        assert caught.value.param == param


@given(st.lists(st.text(max_size=40), min_size=1, max_size=6))
def test_estimate_covers_every_byte_of_text(texts: list[str]) -> None:
    body = chat(*({"role": "user", "content": t} for t in texts))
    est = estimate_chat_request(body)
    text_bytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    assert est.input_tokens >= text_bytes + len(texts) * OVERHEAD + REPLY_OVERHEAD_TOKENS


def test_responses_input_instructions_and_limit() -> None:
    est = estimate_responses_request(
        {
            "model": "gpt-4o-mini",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "hello"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "yo"}],
                },
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
            ],
            "max_output_tokens": 256,
        }
    )
    fco = len(
        json.dumps(
            {"type": "function_call_output", "call_id": "c1", "output": "42"},
            separators=(",", ":"),
        )
    )
    assert est.input_tokens == (
        REPLY_OVERHEAD_TOKENS + 4 * OVERHEAD + len("Be brief.") + 5 + 2 + fco
    )
    assert est.max_output_tokens == 256
    assert est.input_is_bounded
    assert estimate_responses_request({"model": "m", "input": "hi"}).input_tokens == (
        REPLY_OVERHEAD_TOKENS + OVERHEAD + 2
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"previous_response_id": "resp_1"},
        {"conversation": "conv_1"},
        {"prompt": {"id": "pmpt_1"}},
        {"tools": [{"type": "web_search"}]},
        {"input": [{"type": "item_reference", "id": "msg_1"}]},
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
    ],
)
def test_responses_hidden_input_is_unbounded(extra: dict[str, Any]) -> None:
    body = {"model": "gpt-4o-mini", "input": "hi", **extra}
    assert not estimate_responses_request(body).input_is_bounded


def test_responses_function_tools_and_text_format_stay_bounded() -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    base = estimate_responses_request({"model": "m", "input": "hi"})
    est = estimate_responses_request(
        {"model": "m", "input": "hi", "tools": [tool], "text": {"format": fmt}}
    )
    assert est.input_is_bounded
    assert est.input_tokens - base.input_tokens == (
        len(json.dumps(tool, separators=(",", ":")))
        + len(json.dumps(fmt, separators=(",", ":")))
        + 2 * SCHEMA_OVERHEAD_TOKENS
    )


def test_responses_refuses_a_bad_input() -> None:
    with pytest.raises(InvalidRequestBody):
        estimate_responses_request({"model": "m", "input": 3})
    with pytest.raises(InvalidRequestBody):
        estimate_responses_request({"model": "m", "input": "x", "max_output_tokens": -5})


def test_embeddings_inputs() -> None:
    assert estimate_embeddings_request({"model": "e", "input": "héllo"}).input_tokens == 6
    assert estimate_embeddings_request({"model": "e", "input": ["ab", "c"]}).input_tokens == 3
    assert estimate_embeddings_request({"model": "e", "input": [1, 2, 3]}).input_tokens == 3
    assert estimate_embeddings_request({"model": "e", "input": [[1, 2], [3]]}).input_tokens == 3
    est = estimate_embeddings_request({"model": "e", "input": "x"})
    assert est.max_output_tokens == 0
    assert est.output_tokens(8_191) == 0
    for bad in ([], None, [{"x": 1}], 5):
        with pytest.raises(InvalidRequestBody):
            estimate_embeddings_request({"model": "e", "input": bad})


def test_a_message_needs_a_role() -> None:
    for message in ({}, {"role": 3, "content": "x"}):
        with pytest.raises(InvalidRequestBody):
            estimate_chat_request(chat(message))

"""Responses bodies as chat bodies (what a Gemini model serves /v1/responses through)."""

from __future__ import annotations

from typing import Any

import pytest

from aegis.adapters.gemini import (
    ResponsesStreamFromChat,
    TranslationError,
    chat_completion_to_response,
    responses_request_to_chat,
)


def test_a_tool_round_trip_becomes_chat_messages() -> None:
    chat = responses_request_to_chat(
        {
            "model": "gemini-2.5-flash",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": {"t": 20}},
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
            "max_output_tokens": 64,
            "stream": True,
        }
    )
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in chat["messages"][2]["tool_calls"]] == ["c1", "c2"]  # one turn
    assert chat["messages"][4]["content"] == '{"t": 20}'
    assert chat["tools"][0]["function"]["name"] == "w"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert chat["response_format"]["json_schema"]["name"] == "x"
    assert chat["max_completion_tokens"] == 64
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": "x", "previous_response_id": "r"}, "previous_response_id"),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
    ],
)
def test_what_gemini_cannot_serve_names_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(TranslationError) as info:
        responses_request_to_chat(body)
    assert info.value.param == param


def test_answers_and_streams_become_responses() -> None:
    completion = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    response = chat_completion_to_response(completion, {"model": "gemini-2.5-flash"})
    assert response["status"] == "incomplete"
    assert response["output"][0]["content"][0]["text"] == "Hi"
    assert response["usage"]["total_tokens"] == 4

    stream = ResponsesStreamFromChat({"model": "gemini-2.5-flash"})
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}},
    ]
    events = [e for c in chunks for e in stream.feed(c)] + list(stream.finish())
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hi"
    assert events[-1]["response"]["usage"]["output_tokens"] == 1

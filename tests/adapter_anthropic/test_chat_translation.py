"""OpenAI chat-completions <-> Anthropic Messages, as pure functions: what each field becomes,
what is refused (naming the field), and how an answer and a stream come back."""

from __future__ import annotations

from typing import Any

import pytest

from aegis.adapters.anthropic import (
    ChatStreamTranslator,
    TranslationError,
    anthropic_message_to_chat,
    chat_request_to_anthropic,
    openai_error_from_anthropic,
    parse_error_body,
)
from aegis.core import Usage

MODEL = "claude-haiku-4-5"
USER = {"role": "user", "content": "hi"}


def translate(**fields: Any) -> dict[str, Any]:
    return chat_request_to_anthropic({"model": MODEL, "messages": [USER], **fields}).body


def test_messages_system_tools_and_results_become_turns() -> None:
    body = chat_request_to_anthropic(
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
                {"role": "user", "content": "weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "c2", "content": "rain"},
            ],
            "max_tokens": 300,
            "max_completion_tokens": 200,
            "stop": "END",
        }
    ).body
    assert body["system"] == [
        {"type": "text", "text": "be brief"},
        {"type": "text", "text": "and kind"},
    ]
    user, assistant, results = body["messages"]
    assert user == {
        "role": "user",
        "content": [{"type": "text", "text": "weather in Paris and Rome?"}],
    }
    assert assistant["content"][1:] == [
        {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "c2", "name": "weather", "input": {"city": "Rome"}},
    ]
    # The answers to parallel calls form one user turn.
    assert results["role"] == "user"
    assert [b["tool_use_id"] for b in results["content"]] == ["c1", "c2"]
    assert body["max_tokens"] == 200  # the smaller limit wins
    assert body["stop_sequences"] == ["END"]


def test_images_and_pdfs() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
    ]
    (message,) = translate(messages=[{"role": "user", "content": content}])["messages"]
    assert message["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        },
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (None, None, None),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice: Any, parallel: Any, expected: Any) -> None:
    fields: dict[str, Any] = {"tools": [{"type": "function", "function": {"name": "f"}}]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel
    body = translate(**fields)
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert body.get("tool_choice") == expected


def test_without_a_limit_the_default_is_sent() -> None:
    request = {"model": MODEL, "messages": [USER], "stream": True}
    translated = chat_request_to_anthropic(request, default_max_tokens=64_000)
    assert translated.body["max_tokens"] == 64_000
    assert translated.stream
    assert translated.body["stream"] is True


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 1.5}, "temperature"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"response_format": {"type": "json_object"}}, "response_format.type"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"functions": []}, "functions"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "x", "content": "?"}]},
            "messages[0].tool_call_id",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,Qk0="},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
    ],
)
def test_what_claude_cannot_do_is_refused_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(TranslationError) as info:
        translate(**fields)
    assert info.value.param == param


def test_advisory_fields_are_accepted_and_not_sent() -> None:
    body = translate(user="u1", seed=7, store=False, metadata={"a": "b"}, temperature=0.2)
    assert set(body) == {"model", "messages", "max_tokens", "temperature"}


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_a_message_becomes_a_chat_completion(stop: str, finish: str) -> None:
    message = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "It is "},
            {"type": "text", "text": "sunny."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": stop,
        "usage": {
            "input_tokens": 10,
            "cache_read_input_tokens": 5,
            "cache_creation_input_tokens": 2,
            "output_tokens": 7,
        },
    }
    completion = anthropic_message_to_chat(message, model="gpt-4o-mini")
    (choice,) = completion["choices"]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "It is sunny."  # thinking is not answer
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1"
    assert call["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert completion["model"] == "gpt-4o-mini"
    assert completion["usage"]["prompt_tokens"] == 17  # cache reads and writes counted in
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 5}


def test_a_stream_becomes_chat_chunks() -> None:
    translator = ChatStreamTranslator(model="m", include_usage=True)
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": " 1}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    chunks = [c for e in events for c in translator.feed(e)]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"][0]["id"] == "toolu_1"
    assert deltas[2]["tool_calls"][0]["function"] == {"name": "f", "arguments": ""}
    pieces = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]]
    assert "".join(pieces) == '{"a": 1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all(c["usage"] is None for c in chunks)
    assert translator.is_finished
    (usage_chunk,) = translator.finish(Usage(input_tokens=3, output_tokens=9))
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 9


def test_errors_keep_their_status_for_openai_clients() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    status, error = openai_error_from_anthropic(parse_error_body(529, body))
    assert status == 529
    assert error["error"]["type"] == "server_error"
    assert error["error"]["code"] == "overloaded_error"
    assert error["error"]["message"] == "Overloaded"

"""OpenAI chat completions <-> Gemini: requests, responses and streams, as pure functions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aegis.adapters.gemini import (
    ChatStreamTranslator,
    ResponseTranslationError,
    TranslationError,
    chat_request_to_gemini,
    embeddings_request_to_gemini,
    gemini_embeddings_to_openai,
    gemini_response_to_chat,
    sse_event,
)

PNG = "iVBORw0KGgo="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}


def test_request_maps_roles_system_parts_and_sampling() -> None:
    translated = chat_request_to_gemini(
        {
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
                        },
                        {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JVBE"},
                        },
                    ],
                    "name": "alice",
                },
                {"role": "assistant", "content": "A picture."},
                {"role": "user", "content": "More."},
                {"role": "user", "content": "Please."},
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 300,
            "max_completion_tokens": 200,
            "stop": ["END"],
            "n": 2,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "reasoning_effort": "low",
            "user": "u-1",
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert translated.body == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                ],
            },
            {"role": "model", "parts": [{"text": "A picture."}]},
            {"role": "user", "parts": [{"text": "More."}, {"text": "Please."}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric."}]},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "presencePenalty": 0.5,
            "frequencyPenalty": -0.5,
            "maxOutputTokens": 200,
            "stopSequences": ["END"],
            "candidateCount": 2,
            "seed": 7,
            "thinkingConfig": {"thinkingBudget": 1024},
        },
    }
    assert translated.stream
    assert translated.include_usage
    assert translated.n == 2
    assert translated.model == "gemini-2.5-flash"


def test_tool_calls_and_results_become_function_calls_and_responses() -> None:
    translated = chat_request_to_gemini(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                            "extra_content": {"google": {"thought_signature": "c2ln"}},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "rain"}],
                },
            ],
            "tools": [WEATHER_TOOL],
            "tool_choice": "required",
        }
    )
    assert translated.body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "rain"}}},
            ],
        },
    ]
    assert translated.body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
                }
            ]
        }
    ]
    assert translated.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


@pytest.mark.parametrize(
    ("tool_choice", "tool_config", "declared"),
    [
        ("auto", None, ["get_weather", "get_time"]),
        ("none", {"functionCallingConfig": {"mode": "NONE"}}, ["get_weather", "get_time"]),
        (
            {"type": "function", "function": {"name": "get_time"}},
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
            ["get_weather", "get_time"],
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            ["get_weather", "get_time"],
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
            None,
            ["get_weather"],
        ),
    ],
)
def test_tool_choice(tool_choice: Any, tool_config: Any, declared: list[str]) -> None:
    time_tool = {"type": "function", "function": {"name": "get_time"}}
    body = chat_request_to_gemini(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [WEATHER_TOOL, time_tool],
            "tool_choice": tool_choice,
        }
    ).body
    assert body.get("toolConfig") == tool_config
    names = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert names == declared


@pytest.mark.parametrize(
    ("response_format", "config"),
    [
        ({"type": "text"}, {}),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
                },
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object", "properties": {"x": {"type": "integer"}}},
            },
        ),
    ],
)
def test_response_format(response_format: dict[str, Any], config: dict[str, Any]) -> None:
    body = chat_request_to_gemini(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": response_format,
        }
    ).body
    assert body.get("generationConfig", {}) == config


def _user(content: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("request_body", "param", "code"),
    [
        (
            _user([{"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]),
            "messages[0].content[0].image_url.url",
            "unsupported_parameter",
        ),
        (
            _user([{"type": "text", "text": "a"}, {"type": "video", "video": {}}]),
            "messages[0].content[1].type",
            "unsupported_parameter",
        ),
        (
            _user([{"type": "file", "file": {"file_id": "file-1"}}]),
            "messages[0].content[0].file.file_id",
            "unsupported_parameter",
        ),
        (_user(42), "messages[0].content", "invalid_value"),
        ({"model": "m", "messages": []}, "messages", "invalid_value"),
        (
            {"model": "m", "messages": [{"role": "system", "content": "x"}]},
            "messages",
            "invalid_value",
        ),
        (
            {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[0].tool_call_id",
            "invalid_value",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ],
                    }
                ],
            },
            "messages[0].tool_calls[0].function.arguments",
            "invalid_value",
        ),
        ({**_user("hi"), "logprobs": True}, "logprobs", "unsupported_parameter"),
        ({**_user("hi"), "logit_bias": {"1": 5}}, "logit_bias", "unsupported_parameter"),
        ({**_user("hi"), "audio": {"voice": "x"}}, "audio", "unsupported_parameter"),
        ({**_user("hi"), "n": 9}, "n", "invalid_value"),
        ({**_user("hi"), "temperature": 3}, "temperature", "invalid_value"),
        (
            {**_user("hi"), "tools": [{"type": "custom", "custom": {}}]},
            "tools[0].type",
            "unsupported_parameter",
        ),
        ({**_user("hi"), "tool_choice": "required"}, "tool_choice", "invalid_value"),
        ({**_user("hi"), "modalities": ["text", "audio"]}, "modalities", "unsupported_parameter"),
        (
            {**_user("hi"), "response_format": {"type": "xml"}},
            "response_format.type",
            "unsupported_parameter",
        ),
    ],
)
def test_untranslatable_requests_are_rejected_naming_the_field(
    request_body: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_request_to_gemini(request_body)
    assert caught.value.param == param
    assert caught.value.code == code
    error = caught.value.to_openai_error()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param in error["message"]


GEMINI_RESPONSE: dict[str, Any] = {
    "candidates": [
        {
            "index": 0,
            "content": {
                "role": "model",
                "parts": [
                    {"text": "thinking...", "thought": True},
                    {"text": "Let me check."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2ln",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 120,
        "cachedContentTokenCount": 100,
        "candidatesTokenCount": 30,
        "thoughtsTokenCount": 50,
        "toolUsePromptTokenCount": 5,
        "totalTokenCount": 205,
    },
    "modelVersion": "gemini-2.5-flash",
}


def test_response_with_tool_calls_and_usage() -> None:
    out = gemini_response_to_chat(
        GEMINI_RESPONSE, model="gemini-2.5-flash", completion_id="chatcmpl-1", created=5
    )
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    calls = choice["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert all(c["id"].startswith("call_") for c in calls)
    assert out["usage"] == {
        "prompt_tokens": 125,
        "completion_tokens": 80,
        "total_tokens": 205,
        "prompt_tokens_details": {"cached_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 50},
    }
    single = gemini_response_to_chat(GEMINI_RESPONSE, model="m", parallel_tool_calls=False)
    assert len(single["choices"][0]["message"]["tool_calls"]) == 1


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    response = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    out = gemini_response_to_chat(response, model="m")
    ChatCompletion.model_validate(out)
    assert out["choices"][0]["finish_reason"] == expected


def test_blocked_prompt_gives_content_filter_choices() -> None:
    out = gemini_response_to_chat(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}},
        model="m",
        n=2,
    )
    ChatCompletion.model_validate(out)
    assert [c["finish_reason"] for c in out["choices"]] == ["content_filter", "content_filter"]
    assert out["usage"]["prompt_tokens"] == 3


def test_media_output_cannot_be_carried() -> None:
    response = {
        "candidates": [
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}}
        ]
    }
    with pytest.raises(ResponseTranslationError):
        gemini_response_to_chat(response, model="m")


STREAM: list[dict[str, Any]] = [
    {
        "candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "Hel"}]}}],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 1,
            "thoughtsTokenCount": 4,
        },
    },
    {
        "candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "lo"}]}}],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 4,
        },
    },
    {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "!"}]}}]},
    {
        "candidates": [
            {
                "index": 0,
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "f", "args": {"a": 1}, "id": "fc-1"}}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 9,
            "thoughtsTokenCount": 4,
        },
    },
]


def test_stream_translation_order_and_usage_chunk() -> None:
    translator = ChatStreamTranslator(model="m", include_usage=True, completion_id="chatcmpl-s")
    events = [e for chunk in STREAM for e in translator.feed(chunk)] + translator.finish()
    parsed = [ChatCompletionChunk.model_validate(e) for e in events]
    assert {p.id for p in parsed} == {"chatcmpl-s"}
    deltas = [p.choices[0].delta for p in parsed[:-1]]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Hello!"
    calls = [c for d in deltas for c in d.tool_calls or []]
    assert [(c.index, c.id, c.function and c.function.name) for c in calls] == [(0, "fc-1", "f")]
    assert [p.choices[0].finish_reason for p in parsed[:-1]][-1] == "tool_calls"
    assert all(e["usage"] is None for e in events[:-1])
    last = parsed[-1]
    assert last.choices == []
    assert last.usage is not None
    # The last cumulative usage (9 + 4 thoughts), not a sum over the chunks.
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (10, 13)
    assert translator.is_finished


def test_stream_without_include_usage_has_no_usage_field() -> None:
    translator = ChatStreamTranslator(model="m")
    events = [e for chunk in STREAM for e in translator.feed(chunk)] + translator.finish()
    assert all("usage" not in e for e in events)
    assert all(e["choices"] for e in events)
    encoded = sse_event(events[0])
    assert encoded.startswith(b"data: {")
    assert encoded.endswith(b"\n\n")


def test_stream_blocked_prompt_finishes_every_choice() -> None:
    translator = ChatStreamTranslator(model="m", n=2)
    events = translator.feed({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    finishes = [
        e["choices"][0]["finish_reason"] for e in events if e["choices"][0]["finish_reason"]
    ]
    assert finishes == ["content_filter", "content_filter"]


def test_embeddings_request_and_response() -> None:
    translated = embeddings_request_to_gemini(
        {"model": "text-embedding-3-small", "input": "hello", "dimensions": 3, "user": "u"},
        gemini_model="gemini-embedding-001",
    )
    assert translated.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "hello"}]},
                "outputDimensionality": 3,
            }
        ]
    }
    assert translated.encoding_format == "float"
    response = {
        "embeddings": [{"values": [0.5, -0.25, 1.0]}],
        "usageMetadata": {"promptTokenCount": 2},
    }
    out = gemini_embeddings_to_openai(response, model="text-embedding-3-small")
    assert out == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 1.0]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    packed = gemini_embeddings_to_openai(response, model="m", encoding_format="base64")
    assert packed["data"][0]["embedding"] == "AAAAPwAAgL4AAIA/"  # float32 LE 0.5, -0.25, 1.0


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"model": "m", "input": [[1, 2, 3]]}, "input[0]"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "x", "extra": 1}, "extra"),
    ],
)
def test_untranslatable_embeddings_requests(request_body: dict[str, Any], param: str) -> None:
    with pytest.raises(TranslationError) as caught:
        embeddings_request_to_gemini(request_body)
    assert caught.value.param == param

"""Usage extraction from JSON and from the SDK's models gives the same Usage."""

from __future__ import annotations

from typing import Any

from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from aegis.adapters.openai import (
    usage_from_chat,
    usage_from_chat_completion,
    usage_from_embeddings,
    usage_from_responses,
    usage_from_responses_object,
)
from aegis.core import Usage

CHAT: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "o4-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 200},
    },
}

RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "o4-mini",
    "output": [],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 30},
        "total_tokens": 90,
    },
}

EXPECTED_CHAT = Usage(
    input_tokens=1000, cached_input_tokens=600, output_tokens=300, reasoning_tokens=200
)


def test_chat_usage_from_json_and_from_the_sdk_model() -> None:
    assert usage_from_chat_completion(CHAT) == EXPECTED_CHAT
    assert usage_from_chat_completion(ChatCompletion.model_validate(CHAT)) == EXPECTED_CHAT


def test_missing_and_null_details_read_as_zero() -> None:
    assert usage_from_chat({"prompt_tokens": 5, "completion_tokens": 2}) == Usage(5, 0, 2, 0)
    assert usage_from_chat(
        {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": None},
        }
    ) == Usage(5, 0, 2, 0)
    assert usage_from_chat(None) is None
    assert usage_from_chat_completion({"choices": []}) is None


def test_inconsistent_details_are_clamped_not_trusted() -> None:
    odd = {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 9},
        "completion_tokens_details": {"reasoning_tokens": 7},
    }
    assert usage_from_chat(odd) == Usage(5, 5, 2, 2)
    assert usage_from_chat({"prompt_tokens": -3, "completion_tokens": "x"}) == Usage()


def test_responses_usage() -> None:
    expected = Usage(input_tokens=50, cached_input_tokens=20, output_tokens=40, reasoning_tokens=30)
    assert usage_from_responses_object(RESPONSE) == expected
    assert usage_from_responses(RESPONSE["usage"]) == expected
    assert usage_from_responses_object(Response.model_validate(RESPONSE)) == expected
    assert usage_from_responses_object({**RESPONSE, "usage": None}) is None


def test_embeddings_usage() -> None:
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    assert usage_from_embeddings(body) == Usage(input_tokens=7)
    assert usage_from_embeddings(CreateEmbeddingResponse.model_validate(body)) == Usage(7)
    assert usage_from_embeddings({"data": []}) is None

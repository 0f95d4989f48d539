"""Anthropic Messages response (JSON) -> OpenAI ``chat.completion``, and Anthropic errors as
OpenAI clients expect them.

- The message becomes the one choice: its ``text`` blocks joined into ``message.content``, its
  ``tool_use`` blocks ``tool_calls`` (``input`` re-encoded as the JSON string of
  ``arguments``, Anthropic's id kept). Thinking blocks are reasoning, not answer, and are left
  out (their tokens are in ``completion_tokens_details.reasoning_tokens``).
- Stop reasons: ``end_turn``, ``stop_sequence`` and ``pause_turn`` -> ``stop``, ``tool_use`` ->
  ``tool_calls``, ``max_tokens`` and ``model_context_window_exceeded`` -> ``length``,
  ``refusal`` -> ``content_filter``.
- Usage: ``prompt_tokens`` = every prompt token (cache reads and writes included, as Aegis
  counts them), ``completion_tokens`` = output (thinking included), ``cached_tokens`` = cache
  reads.
- Errors keep their HTTP status (so the client's retry decisions carry over); Anthropic's
  ``error.type`` becomes the ``code``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aegis.core import (
    Usage,
    assistant_message,
    new_completion_id,
    openai_error_type,
    openai_usage,
)

from .errors import AnthropicErrorInfo, WireError
from .usage import usage_from_message

__all__ = ["anthropic_message_to_chat", "openai_error_from_anthropic", "stop_reason_to_openai"]

_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}


def stop_reason_to_openai(reason: object) -> str:
    """OpenAI's ``finish_reason`` for an Anthropic ``stop_reason`` (``stop`` if unknown)."""
    return _FINISH.get(reason, "stop") if isinstance(reason, str) else "stop"


def tool_call(block: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    """The OpenAI tool call of a ``tool_use`` block (``index`` for stream deltas)."""
    name, call_id = block.get("name"), block.get("id")
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise WireError("a tool_use block without a name or an id")
    out: dict[str, Any] = {} if index is None else {"index": index}
    arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
    out.update(
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    )
    return out


def anthropic_message_to_chat(
    message: Mapping[str, Any],
    *,
    model: str,
    completion_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """Translate a Messages response into a ``chat.completion`` object; raises
    :class:`WireError` for a body that is not a Messages response."""
    content = message.get("content")
    if not isinstance(content, Sequence) or isinstance(content, str):
        raise WireError("the message has no content array")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, Mapping):
            raise WireError("a content block is not an object")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(tool_call(block))
    reply = assistant_message(texts, calls)
    usage = usage_from_message(message) or Usage()
    return {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": stop_reason_to_openai(message.get("stop_reason")),
            }
        ],
        "usage": openai_usage(usage),
    }


def openai_error_from_anthropic(error: AnthropicErrorInfo) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OpenAI error body to answer an OpenAI client with."""
    status = error.status if 400 <= error.status <= 599 else 502
    return status, {
        "error": {
            "message": error.message,
            "type": openai_error_type(status),
            "param": None,
            "code": error.type,
        }
    }

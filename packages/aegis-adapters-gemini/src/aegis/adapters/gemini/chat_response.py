"""Gemini ``generateContent`` response (REST JSON) -> OpenAI ``chat.completion``.

- Each candidate becomes a choice; its text parts are joined into ``message.content`` and its
  ``functionCall`` parts become ``tool_calls`` (arguments re-encoded as a JSON string; the id is
  Gemini's when it sends one, else a fresh ``call_...``; a ``thoughtSignature`` travels in
  ``extra_content.google.thought_signature`` as on Google's own OpenAI endpoint). Thought
  summaries (``thought: true``) are reasoning, not answer, and are left out of ``content``.
  ``executableCode`` / ``codeExecutionResult`` parts become fenced text; media output cannot be
  carried and raises :class:`ResponseTranslationError`.
- Finish reasons: ``STOP`` -> ``stop`` (``tool_calls`` when the candidate called a function),
  ``MAX_TOKENS`` -> ``length``, safety, recitation, blocklist, prohibited content, SPII and
  language blocks -> ``content_filter``; anything else (malformed or unexpected function calls,
  ``OTHER``) -> ``stop``. A prompt blocked before any candidate (``promptFeedback.blockReason``)
  gives ``n`` empty choices with ``content_filter``.
- Usage: ``prompt_tokens`` = prompt (+ tool-use prompt), ``completion_tokens`` = candidates +
  thoughts, with ``cached_tokens`` and ``reasoning_tokens`` details.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aegis.core import Usage, assistant_message, new_call_id, new_completion_id, openai_usage

from .errors import ResponseTranslationError
from .usage import usage_from_response

__all__ = [
    "finish_reason_to_openai",
    "gemini_response_to_chat",
    "new_completion_id",
    "openai_usage",
]

_CONTENT_FILTER: Final = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


def finish_reason_to_openai(reason: object, *, called_tools: bool) -> str | None:
    """OpenAI's ``finish_reason`` for a Gemini ``finishReason`` (``None`` while unfinished)."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        return "stop"
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if called_tools else "stop"


def tool_call_from_part(part: Mapping[str, Any], index: int | None = None) -> dict[str, Any]:
    """The OpenAI tool call for a part holding ``functionCall`` (``index`` for stream deltas)."""
    call = part["functionCall"]
    if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
        raise ResponseTranslationError("functionCall without a name")
    call_id = call.get("id")
    out: dict[str, Any] = {} if index is None else {"index": index}
    out.update(
        {
            "id": call_id if isinstance(call_id, str) and call_id else new_call_id(),
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call.get("args") or {}, ensure_ascii=False),
            },
        }
    )
    signature = part.get("thoughtSignature")
    if isinstance(signature, str):
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def part_text(part: Mapping[str, Any]) -> str | None:
    """The answer text a part contributes (``None`` for function calls and thoughts)."""
    if part.get("thought") is True:
        return None
    text = part.get("text")
    if isinstance(text, str):
        return text
    code = part.get("executableCode")
    if isinstance(code, Mapping):
        language = str(code.get("language", "")).lower().replace("language_unspecified", "")
        return f"\n```{language}\n{code.get('code', '')}\n```\n"
    result = part.get("codeExecutionResult")
    if isinstance(result, Mapping):
        return f"\n```\n{result.get('output', '')}\n```\n"
    if "functionCall" in part or ("thoughtSignature" in part and len(part) == 1):
        return None
    kinds = ", ".join(sorted(k for k in part if k != "thoughtSignature"))
    raise ResponseTranslationError(f"Gemini returned a part chat completions cannot hold: {kinds}")


def candidate_parts(candidate: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """A candidate's parts (empty when it has none)."""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, Sequence):
        return []
    return [p for p in parts if isinstance(p, Mapping)]


def gemini_response_to_chat(
    response: Mapping[str, Any],
    *,
    model: str,
    n: int = 1,
    parallel_tool_calls: bool = True,
    completion_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """Translate a ``generateContent`` response into a ``chat.completion`` object."""
    choices = []
    raw_candidates = response.get("candidates")
    candidates = raw_candidates if isinstance(raw_candidates, Sequence) else []
    for position, candidate in enumerate(candidates):
        if not isinstance(candidate, Mapping):
            raise ResponseTranslationError("a candidate is not an object")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in candidate_parts(candidate):
            if "functionCall" in part:
                if parallel_tool_calls or not calls:
                    calls.append(tool_call_from_part(part))
                continue
            text = part_text(part)
            if text is not None:
                texts.append(text)
        message = assistant_message(texts, calls)
        index = candidate.get("index", position)
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason_to_openai(
                    candidate.get("finishReason") or "STOP", called_tools=bool(calls)
                ),
            }
        )
    if not choices:
        feedback = response.get("promptFeedback")
        blocked = isinstance(feedback, Mapping) and feedback.get("blockReason") is not None
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": "content_filter" if blocked else "stop",
            }
            for i in range(n)
        ]
    usage = usage_from_response(response) or Usage()
    out: dict[str, Any] = {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
        "usage": openai_usage(usage),
    }
    return out

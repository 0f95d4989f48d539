"""Gemini ``streamGenerateContent`` chunks -> OpenAI ``chat.completion.chunk`` SSE events.

Per choice, in order: a first delta with ``role: assistant`` and ``content: ""``, then one
delta per text part, one ``tool_calls`` delta per function call (Gemini sends each call whole,
so id, name and full arguments arrive in one delta, with ``index`` counting the choice's calls),
and a last empty delta with the ``finish_reason``. When the client asked for usage, every chunk
carries ``usage: null`` and :meth:`ChatStreamTranslator.finish` adds the usage chunk
(``choices: []``) from the last cumulative ``usageMetadata``. The body ends with
``data: [DONE]``. A Gemini error in the stream becomes ``data: {"error": {...}}``, which the
OpenAI SDK raises as an ``APIError``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aegis.core import SSE_DONE, chat_sse_event, usage_chunk

from .chat_response import (
    candidate_parts,
    finish_reason_to_openai,
    new_completion_id,
    part_text,
    tool_call_from_part,
)
from .errors import WireError
from .upstream_errors import GeminiError, openai_error_body
from .usage import StreamUsage

__all__ = ["SSE_DONE", "ChatStreamTranslator", "sse_event", "stream_error_event"]

sse_event: Final = chat_sse_event
"""One ``data:`` event carrying its argument as JSON (:func:`aegis.core.chat_sse_event`)."""


def stream_error_event(error: GeminiError) -> bytes:
    """The event that reports an upstream error after the stream has started."""
    return sse_event(openai_error_body(error)[1])


@dataclass(slots=True)
class _Choice:
    started: bool = False
    calls: int = 0
    finished: bool = False


@dataclass(slots=True)
class ChatStreamTranslator:
    """Stateful translation of one Gemini stream; one instance per response."""

    model: str
    include_usage: bool = False
    parallel_tool_calls: bool = True
    n: int = 1
    completion_id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    usage: StreamUsage = field(default_factory=StreamUsage)
    _choices: dict[int, _Choice] = field(default_factory=dict)

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _start(self, index: int, out: list[dict[str, Any]]) -> _Choice:
        choice = self._choices.setdefault(index, _Choice())
        if not choice.started:
            choice.started = True
            out.append(self._chunk(index, {"role": "assistant", "content": ""}, None))
        return choice

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one parsed Gemini stream chunk."""
        if "error" in chunk:
            raise WireError("the stream carried an error; report it with stream_error_event")
        self.usage.observe(chunk)
        out: list[dict[str, Any]] = []
        raw = chunk.get("candidates")
        candidates: Sequence[Any] = raw if isinstance(raw, Sequence) else []
        for position, candidate in enumerate(candidates):
            if not isinstance(candidate, Mapping):
                continue
            raw_index = candidate.get("index", position)
            index = raw_index if isinstance(raw_index, int) else position
            choice = self._start(index, out)
            if choice.finished:
                continue
            for part in candidate_parts(candidate):
                if "functionCall" in part:
                    if self.parallel_tool_calls or choice.calls == 0:
                        call = tool_call_from_part(part, index=choice.calls)
                        choice.calls += 1
                        out.append(self._chunk(index, {"tool_calls": [call]}, None))
                    continue
                text = part_text(part)
                if text:
                    out.append(self._chunk(index, {"content": text}, None))
            reason = candidate.get("finishReason")
            if isinstance(reason, str):
                choice.finished = True
                finish = finish_reason_to_openai(reason, called_tools=choice.calls > 0)
                out.append(self._chunk(index, {}, finish))
        feedback = chunk.get("promptFeedback")
        if not candidates and isinstance(feedback, Mapping) and feedback.get("blockReason"):
            for index in range(self.n):
                choice = self._start(index, out)
                if not choice.finished:
                    choice.finished = True
                    out.append(self._chunk(index, {}, "content_filter"))
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The chunks that close the stream: the usage chunk, when the client asked for it."""
        if not self.include_usage or self.usage.reported is None:
            return []
        return [usage_chunk(self.completion_id, self.created, self.model, self.usage.reported)]

    @property
    def is_finished(self) -> bool:
        """Every choice seen has its finish reason (a stream cut before this is incomplete)."""
        return bool(self._choices) and all(c.finished for c in self._choices.values())

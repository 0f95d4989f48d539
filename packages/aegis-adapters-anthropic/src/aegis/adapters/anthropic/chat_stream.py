"""Anthropic Messages stream events -> OpenAI ``chat.completion.chunk`` events.

In order: ``message_start`` gives the first delta (``role: assistant``, ``content: ""``); each
``text_delta`` a ``content`` delta; a ``tool_use`` block's start a ``tool_calls`` delta with its
id and name (``index`` counting the message's calls) and each ``input_json_delta`` an
``arguments`` piece of it; ``message_delta``'s ``stop_reason`` the last, empty delta with the
``finish_reason``. Thinking, signatures, citations and ``ping`` show nothing. When the client
asked for usage, every chunk carries ``usage: null`` and :meth:`ChatStreamTranslator.finish`
adds the usage chunk (``choices: []``); the caller ends the body with ``data: [DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aegis.core import Usage, new_completion_id, usage_chunk

from .chat_response import stop_reason_to_openai, tool_call

__all__ = ["ChatStreamTranslator"]


@dataclass(slots=True)
class ChatStreamTranslator:
    """Stateful translation of one Messages stream; one instance per response."""

    model: str
    include_usage: bool = False
    completion_id: str = field(default_factory=new_completion_id)
    created: int = field(default_factory=lambda: int(time.time()))
    _started: bool = False
    _finished: bool = False
    _calls: dict[int, int] = field(default_factory=dict)
    """Content block index -> tool call index."""

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def _start(self, out: list[dict[str, Any]]) -> None:
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}, None))

    def feed(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one parsed Messages stream event."""
        out: list[dict[str, Any]] = []
        kind = event.get("type")
        if kind == "message_start":
            self._start(out)
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, Mapping) and block.get("type") == "tool_use":
                self._start(out)
                index = len(self._calls)
                self._calls[_index(event)] = index
                call = tool_call({**block, "input": {}}, index=index)
                call["function"]["arguments"] = ""
                out.append(self._chunk({"tool_calls": [call]}, None))
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if not isinstance(delta, Mapping):
                return out
            if delta.get("type") == "text_delta" and delta.get("text"):
                self._start(out)
                out.append(self._chunk({"content": delta["text"]}, None))
            elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                call_index = self._calls.get(_index(event))
                if call_index is not None:
                    piece = {"index": call_index, "function": {"arguments": delta["partial_json"]}}
                    out.append(self._chunk({"tool_calls": [piece]}, None))
        elif kind == "message_delta":
            delta = event.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, Mapping) else None
            if reason is not None and not self._finished:
                out.extend(self.stop(stop_reason_to_openai(reason)))
        return out

    def stop(self, finish_reason: str) -> list[dict[str, Any]]:
        """The chunk that finishes the choice with ``finish_reason`` (nothing if it was)."""
        if self._finished:
            return []
        out: list[dict[str, Any]] = []
        self._start(out)
        self._finished = True
        out.append(self._chunk({}, finish_reason))
        return out

    def finish(self, usage: Usage | None) -> list[dict[str, Any]]:
        """The chunks that close the stream: the usage chunk, when the client asked for it."""
        if not self.include_usage or usage is None:
            return []
        return [usage_chunk(self.completion_id, self.created, self.model, usage)]

    @property
    def is_finished(self) -> bool:
        """The finish reason was sent (a stream cut before this is incomplete)."""
        return self._finished


def _index(event: Mapping[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1

"""OpenAI's Responses API served by Gemini, through the chat translation: a Responses body
becomes a chat completions body (then :func:`chat_request_to_gemini` as usual), and the chat
answer (or stream) becomes a Responses object (or event stream).

Covered: ``input`` as text or items (messages with text and image parts, ``function_call``
and ``function_call_output`` items), ``instructions``, ``max_output_tokens``,
``temperature``, ``top_p``, function ``tools``, ``tool_choice``, ``parallel_tool_calls``,
``text.format`` (``text``, ``json_object``, ``json_schema``), ``stream``, and ``store``,
``metadata``, ``user`` (accepted: Gemini stores nothing, so a response served by Gemini cannot
be read back). Anything else (built-in tools, ``previous_response_id``, ``reasoning``...) is a
:class:`TranslationError` naming the field.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ._checks import array, mapping, string, unsupported

__all__ = [
    "ResponsesStreamFromChat",
    "chat_completion_to_response",
    "responses_request_to_chat",
    "responses_sse_event",
]

_FIELDS: Final = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "stream",
        "store",
        "metadata",
        "user",
    }
)
_ROLES: Final = frozenset({"user", "assistant", "system", "developer"})


def _new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def _content(value: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    parts: list[dict[str, Any]] = []
    for i, raw in enumerate(array(value, param)):
        part = mapping(raw, f"{param}[{i}]")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": string(part.get("text"), f"{param}[{i}].text")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            unsupported(f"{param}[{i}].type", f"content part {kind!r} cannot be sent to Gemini")
    return parts


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        messages.append({"role": "system", "content": string(instructions, "instructions")})
    raw = body.get("input")
    if isinstance(raw, str):
        return [*messages, {"role": "user", "content": raw}]
    for i, entry in enumerate(array(raw, "input")):
        item = mapping(entry, f"input[{i}]")
        kind = item.get("type", "message")
        where = f"input[{i}]"
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                unsupported(f"{where}.role", f"role {role!r} cannot be sent to Gemini")
            role = "system" if role == "developer" else role
            messages.append({"role": role, "content": _content(item.get("content"), where)})
        elif kind == "function_call":
            call = {
                "id": string(item.get("call_id"), f"{where}.call_id"),
                "type": "function",
                "function": {
                    "name": string(item.get("name"), f"{where}.name"),
                    "arguments": string(item.get("arguments"), f"{where}.arguments"),
                },
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)  # one turn's calls, one message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": string(item.get("call_id"), f"{where}.call_id"),
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
        else:
            unsupported(f"{where}.type", f"input item {kind!r} cannot be sent to Gemini")
    return messages


def _tools(raw: Any) -> list[dict[str, Any]]:
    tools = []
    for i, entry in enumerate(array(raw, "tools")):
        tool = mapping(entry, f"tools[{i}]")
        if tool.get("type") != "function":
            unsupported(f"tools[{i}].type", f"tool {tool.get('type')!r} has no Gemini equivalent")
        function: dict[str, Any] = {"name": string(tool.get("name"), f"tools[{i}].name")}
        for key in ("description", "parameters"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> Any:
    if isinstance(raw, str):
        return raw
    choice = mapping(raw, "tool_choice")
    if choice.get("type") != "function":
        unsupported("tool_choice", "only auto, none, required or one function")
    return {"type": "function", "function": {"name": string(choice.get("name"), "tool_choice")}}


def _response_format(text: Any) -> dict[str, Any] | None:
    options = mapping(text, "text")
    raw = options.get("format")
    if raw is None:
        return None
    fmt = mapping(raw, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema: dict[str, Any] = {"name": string(fmt.get("name"), "text.format.name")}
        for key in ("schema", "strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    unsupported("text.format.type", f"format {kind!r} has no Gemini equivalent")


def responses_request_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat completions body that asks Gemini what a Responses body asks; raises
    :class:`TranslationError` naming a field Gemini cannot serve."""
    body = mapping(body, "body")
    for key in body:
        if key not in _FIELDS:
            unsupported(str(key), "is not supported when a Gemini model serves /v1/responses")
    chat: dict[str, Any] = {"model": string(body.get("model"), "model")}
    chat["messages"] = _messages(body)
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        response_format = _response_format(body["text"])
        if response_format is not None:
            chat["response_format"] = response_format
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _usage(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _envelope(
    request: Mapping[str, Any], response_id: str, created: int, status: str
) -> dict[str, Any]:
    text = request.get("text")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": request.get("model"),
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "temperature": request.get("temperature", 1.0),
        "top_p": request.get("top_p", 1.0),
        "text": text if isinstance(text, Mapping) else {"format": {"type": "text"}},
        "truncation": "disabled",
        "usage": None,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}] if text else [],
    }


def _call_item(call: Mapping[str, Any], status: str = "completed") -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "type": "function_call",
        "id": f"fc_{call.get('id')}",
        "call_id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments", ""),
        "status": status,
    }


def chat_completion_to_response(
    completion: Mapping[str, Any], request: Mapping[str, Any]
) -> dict[str, Any]:
    """The Responses object for a chat completion answering ``request`` (its first choice)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices, Sequence) else {}
    message = choice.get("message") or {}
    status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
    response_id = _new_response_id()
    out = _envelope(request, response_id, int(time.time()), status)
    text = message.get("content")
    if isinstance(text, str) and text:
        out["output"].append(_message_item(f"msg_{response_id[5:]}", text))
    for call in message.get("tool_calls") or []:
        out["output"].append(_call_item(call))
    out["usage"] = _usage(completion.get("usage"))
    return out


def responses_sse_event(event: Mapping[str, Any]) -> bytes:
    """One named Responses stream event."""
    data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


@dataclass(slots=True)
class ResponsesStreamFromChat:
    """Chat completion chunks (of one choice) → Responses stream events."""

    request: Mapping[str, Any]
    response_id: str = field(default_factory=_new_response_id)
    created: int = field(default_factory=lambda: int(time.time()))
    _seq: int = 0
    _started: bool = False
    _text: list[str] = field(default_factory=list)
    _message_open: bool = False
    _items: list[dict[str, Any]] = field(default_factory=list)
    _finish: str | None = None
    _usage: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    @property
    def _message_id(self) -> str:
        return f"msg_{self.response_id[5:]}"

    def _close_message(self) -> Iterator[dict[str, Any]]:
        if not self._message_open:
            return
        self._message_open = False
        text = "".join(self._text)
        common = {"item_id": self._message_id, "output_index": len(self._items), "content_index": 0}
        yield self._event("response.output_text.done", **common, text=text, logprobs=[])
        part = {"type": "output_text", "text": text, "annotations": []}
        yield self._event("response.content_part.done", **common, part=part)
        item = _message_item(self._message_id, text)
        yield self._event("response.output_item.done", output_index=len(self._items), item=item)
        self._items.append(item)

    def feed(self, chunk: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The events for one chat chunk."""
        if not self._started:
            self._started = True
            pending = _envelope(self.request, self.response_id, self.created, "in_progress")
            yield self._event("response.created", response=pending)
            yield self._event("response.in_progress", response=pending)
        if chunk.get("usage"):
            self._usage = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if not self._message_open:
                    self._message_open = True
                    started = _message_item(self._message_id, "", "in_progress")
                    index = len(self._items)
                    yield self._event(
                        "response.output_item.added", output_index=index, item=started
                    )
                    part = {"type": "output_text", "text": "", "annotations": []}
                    yield self._event(
                        "response.content_part.added",
                        item_id=self._message_id,
                        output_index=index,
                        content_index=0,
                        part=part,
                    )
                self._text.append(text)
                yield self._event(
                    "response.output_text.delta",
                    item_id=self._message_id,
                    output_index=len(self._items),
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            for call in delta.get("tool_calls") or []:
                yield from self._close_message()
                yield from self._call(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]

    def _call(self, call: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        # The chat translation sends each Gemini call whole: one delta per call.
        item = _call_item(call)
        index = len(self._items)
        yield self._event(
            "response.output_item.added",
            output_index=index,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        common = {"item_id": item["id"], "output_index": index}
        yield self._event(
            "response.function_call_arguments.delta", **common, delta=item["arguments"]
        )
        yield self._event(
            "response.function_call_arguments.done", **common, arguments=item["arguments"]
        )
        yield self._event("response.output_item.done", output_index=index, item=item)
        self._items.append(item)

    def finish(self) -> Iterator[dict[str, Any]]:
        """The events that close the stream: open items, then the completed response."""
        yield from self._close_message()
        status = "incomplete" if self._finish == "length" else "completed"
        final = _envelope(self.request, self.response_id, self.created, status)
        final["output"] = list(self._items)
        final["usage"] = self._usage
        kind = "response.completed" if status == "completed" else "response.incomplete"
        yield self._event(kind, response=final)

"""OpenAI chat-completions request -> Anthropic Messages request (JSON).

Every field of the OpenAI request is translated, or rejected with a :class:`TranslationError`
naming it; nothing that changes the answer is dropped. Decisions where the two APIs differ:

- ``system`` and ``developer`` messages, wherever they stand, become ``system`` text blocks in
  order; consecutive messages of one Anthropic role are merged into one turn, so the answers to
  parallel tool calls form one user turn of ``tool_result`` blocks.
- Images: ``data:`` URLs become base64 image sources, ``http(s)`` URLs URL sources (Anthropic
  fetches them); ``image_url.detail`` has no equivalent and is not sent. A ``file`` part holding
  a base64 PDF becomes a ``document``; OpenAI ``file_id``\\ s and audio are rejected.
- Tool calls become ``tool_use`` blocks (arguments parsed), tool messages ``tool_result``
  blocks answering them by id.
- ``max_tokens`` and ``max_completion_tokens`` both set: the smaller wins; neither: the
  caller's ``default_max_tokens`` (Anthropic requires one; the proxy passes the model's
  output limit).
- ``temperature`` above 1 (Anthropic's maximum) is rejected, not clamped. ``n`` above 1,
  ``presence_penalty``/``frequency_penalty`` other than 0, ``logprobs``, ``logit_bias``,
  ``audio``, ``prediction``, ``web_search_options``, ``functions``/``function_call``, JSON
  ``response_format`` and ``reasoning_effort`` other than ``none`` are rejected when set.
- ``tool_choice``: ``auto`` -> ``auto``, ``none`` -> ``none``, ``required`` -> ``any``, a
  named function -> ``tool``; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
- Fields that do not change the answer are accepted and not sent: ``user``,
  ``safety_identifier``, ``metadata``, ``store``, ``prompt_cache_key``,
  ``prompt_cache_retention``, ``service_tier``, ``seed`` (Claude has no seed),
  ``stream_options.include_obfuscation`` and a message's ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aegis.core import (
    ChatOptions,
    JsonChecks,
    check_chat_fields,
    merge_turn,
    read_chat_options,
    read_function_call,
    read_function_tool,
    read_tool_choice,
    split_data_url,
)

from .errors import TranslationError

__all__ = ["AnthropicChatRequest", "chat_request_to_anthropic"]

_CHECKS: Final = JsonChecks(TranslationError)
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_SYSTEM_KEYS: Final = frozenset({"role", "content", "name"})
_ASSISTANT_KEYS: Final = frozenset(
    {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}
)
_TOOL_KEYS: Final = frozenset({"role", "content", "tool_call_id"})


@dataclass(frozen=True, slots=True)
class AnthropicChatRequest:
    """An OpenAI chat request translated for Claude: the Messages body (``POST /v1/messages``),
    the model the client named (routing picks the Claude model), and the options the answer's
    translation needs (``stream``, ``include_usage``)."""

    body: dict[str, Any]
    model: str
    options: ChatOptions

    @property
    def stream(self) -> bool:
        return self.options.stream

    @property
    def include_usage(self) -> bool:
        """The client asked for the final usage chunk (``stream_options.include_usage``)."""
        return self.options.include_usage


# -- content ----------------------------------------------------------------------------------


def _image(url: str, param: str) -> dict[str, Any]:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    inline = split_data_url(url)
    if inline is None:
        _CHECKS.fail(param, "must be an http(s) URL or a base64 data: URL")
    mime, data = inline
    if mime not in _IMAGE_TYPES:
        _CHECKS.unsupported(param, f"Claude reads JPEG, PNG, GIF and WebP images, not {mime}")
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}


def _file(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    file = _CHECKS.mapping(part.get("file"), f"{where}.file")
    _CHECKS.only_keys(file, frozenset({"file_data", "file_id", "filename"}), f"{where}.file")
    if file.get("file_id") is not None:
        _CHECKS.unsupported(f"{where}.file.file_id", "OpenAI file ids mean nothing to Claude")
    data = _CHECKS.string(file.get("file_data"), f"{where}.file.file_data")
    inline = split_data_url(data)
    filename = file.get("filename")
    if inline is None and isinstance(filename, str) and filename.lower().endswith(".pdf"):
        inline = ("application/pdf", data)
    if inline is None or inline[0] != "application/pdf":
        _CHECKS.unsupported(f"{where}.file.file_data", "only base64 PDF files are supported")
    return {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": inline[1]},
    }


def _block(part: Mapping[str, Any], where: str, *, role: str) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        _CHECKS.only_keys(part, frozenset({"type", "text"}), where)
        text = _CHECKS.string(part.get("text"), f"{where}.text")
        return {"type": "text", "text": text} if text else None
    if kind == "refusal" and role == "assistant":
        _CHECKS.only_keys(part, frozenset({"type", "refusal"}), where)
        text = _CHECKS.string(part.get("refusal"), f"{where}.refusal")
        return {"type": "text", "text": text} if text else None
    if role == "user" and kind == "image_url":
        _CHECKS.only_keys(part, frozenset({"type", "image_url"}), where)
        image = _CHECKS.mapping(part.get("image_url"), f"{where}.image_url")
        _CHECKS.only_keys(image, frozenset({"url", "detail"}), f"{where}.image_url")
        detail = image.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            _CHECKS.fail(f"{where}.image_url.detail", "must be auto, low or high")
        url = _CHECKS.string(image.get("url"), f"{where}.image_url.url")
        return _image(url, f"{where}.image_url.url")
    if role == "user" and kind == "file":
        _CHECKS.only_keys(part, frozenset({"type", "file"}), where)
        return _file(part, where)
    if isinstance(kind, str):
        _CHECKS.unsupported(f"{where}.type", f"content part type {kind!r} is not supported here")
    _CHECKS.fail(f"{where}.type", "must be a string")


def _blocks(content: Any, where: str, *, role: str, allow_null: bool = False) -> list[Any]:
    if content is None:
        if allow_null:
            return []
        _CHECKS.fail(where, "is required")
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, raw in enumerate(_CHECKS.array(content, where)):
        block = _block(_CHECKS.mapping(raw, f"{where}[{j}]"), f"{where}[{j}]", role=role)
        if block is not None:
            blocks.append(block)
    return blocks


# -- messages ---------------------------------------------------------------------------------


def _messages(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the ``messages`` for an OpenAI message list."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    calls: set[str] = set()

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        merge_turn(turns, role, blocks, "content")

    for i, raw in enumerate(messages):
        where = f"messages[{i}]"
        message = _CHECKS.mapping(raw, where)
        role = message.get("role")
        if role in ("system", "developer"):
            _CHECKS.only_keys(message, _SYSTEM_KEYS, where)
            system.extend(_blocks(message.get("content"), f"{where}.content", role="system"))
        elif role == "user":
            _CHECKS.only_keys(message, _SYSTEM_KEYS, where)
            add("user", _blocks(message.get("content"), f"{where}.content", role="user"))
        elif role == "assistant":
            _CHECKS.only_keys(message, _ASSISTANT_KEYS, where)
            for key in ("audio", "function_call"):
                if message.get(key) is not None:
                    _CHECKS.unsupported(f"{where}.{key}", "is not supported")
            blocks = _blocks(
                message.get("content"), f"{where}.content", role="assistant", allow_null=True
            )
            refusal = message.get("refusal")
            if refusal is not None and _CHECKS.string(refusal, f"{where}.refusal"):
                blocks.append({"type": "text", "text": refusal})
            if message.get("tool_calls") is not None:
                where_calls = f"{where}.tool_calls"
                for k, raw_call in enumerate(_CHECKS.array(message["tool_calls"], where_calls)):
                    call = read_function_call(_CHECKS, raw_call, f"{where_calls}[{k}]")
                    calls.add(call.id)
                    blocks.append(
                        {
                            "type": "tool_use",
                            "id": call.id,
                            "name": call.name,
                            "input": call.arguments,
                        }
                    )
            add("assistant", blocks)
        elif role == "tool":
            _CHECKS.only_keys(message, _TOOL_KEYS, where)
            call_id = _CHECKS.string(message.get("tool_call_id"), f"{where}.tool_call_id")
            if call_id not in calls:
                _CHECKS.fail(f"{where}.tool_call_id", "answers no earlier assistant tool call")
            content = _blocks(message.get("content"), f"{where}.content", role="tool")
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
            if content:
                result["content"] = content
            add("user", [result])
        elif role == "function":
            _CHECKS.unsupported(f"{where}.role", "function messages are deprecated; use tools")
        else:
            _CHECKS.fail(f"{where}.role", "must be system, developer, user, assistant or tool")
    return system, turns


# -- the request ------------------------------------------------------------------------------


def _tools(request: Mapping[str, Any], body: dict[str, Any]) -> None:
    known: set[str] = set()
    tools = []
    if request.get("tools") is not None:
        for i, raw in enumerate(_CHECKS.array(request["tools"], "tools")):
            tool = read_function_tool(_CHECKS, raw, f"tools[{i}]")
            spec: dict[str, Any] = {
                "name": tool.name,
                "input_schema": tool.parameters or {"type": "object", "properties": {}},
            }
            if tool.description is not None:
                spec["description"] = tool.description
            tools.append(spec)
            known.add(tool.name)
    choice = read_tool_choice(_CHECKS, request.get("tool_choice"), known)
    if choice.names is not None and choice.mode == "auto":
        tools = [t for t in tools if t["name"] in choice.names]
    if tools:
        body["tools"] = tools
    parallel = request.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        _CHECKS.fail("parallel_tool_calls", "must be a boolean")
    if not tools:
        return
    selected: dict[str, Any]
    if choice.mode == "none":
        selected = {"type": "none"}
    elif choice.mode == "auto":
        selected = {"type": "auto"}
    elif choice.names is not None and len(choice.names) == 1:
        selected = {"type": "tool", "name": choice.names[0]}
    else:
        if choice.names is not None:
            body["tools"] = [t for t in tools if t["name"] in choice.names]
        selected = {"type": "any"}
    if parallel is False and selected["type"] != "none":
        selected["disable_parallel_tool_use"] = True
    if selected != {"type": "auto"}:
        body["tool_choice"] = selected


def _sampling(request: Mapping[str, Any], body: dict[str, Any], default_max_tokens: int) -> None:
    if request.get("temperature") is not None:
        body["temperature"] = _CHECKS.number(request["temperature"], "temperature", 0, 1)
    if request.get("top_p") is not None:
        body["top_p"] = _CHECKS.number(request["top_p"], "top_p", 0, 1)
    for key in ("presence_penalty", "frequency_penalty"):
        value = request.get(key)
        if value is not None and _CHECKS.number(value, key, -2, 2) != 0:
            _CHECKS.unsupported(key, "Claude has no presence or frequency penalty")
    options = read_chat_options(_CHECKS, request)
    limit = options.max_output_tokens
    body["max_tokens"] = limit if limit is not None else max(1, default_max_tokens)
    if options.stop:
        body["stop_sequences"] = list(options.stop)


def _check_unsupported(request: Mapping[str, Any]) -> None:
    check_chat_fields(_CHECKS, request, "Anthropic")
    n = request.get("n")
    if n is not None and n != 1:
        _CHECKS.unsupported("n", "Claude answers with one choice")
    effort = request.get("reasoning_effort")
    if effort is not None and effort != "none":
        _CHECKS.unsupported("reasoning_effort", "send the Messages API's thinking instead")
    fmt = request.get("response_format")
    if fmt is not None and _CHECKS.mapping(fmt, "response_format").get("type") != "text":
        _CHECKS.unsupported("response_format.type", "only text is translated for Claude")


def chat_request_to_anthropic(
    request: Mapping[str, Any], *, default_max_tokens: int = 4096
) -> AnthropicChatRequest:
    """Translate an OpenAI ``/v1/chat/completions`` body; raises :class:`TranslationError`."""
    request = _CHECKS.mapping(request, "body")
    _check_unsupported(request)
    model = _CHECKS.string(request.get("model"), "model")
    options = read_chat_options(_CHECKS, request)
    system, messages = _messages(_CHECKS.array(request.get("messages"), "messages"))
    if not messages:
        _CHECKS.fail("messages", "must hold at least one user, assistant or tool message")
    body: dict[str, Any] = {"model": model, "messages": messages}
    if system:
        body["system"] = system
    _sampling(request, body, default_max_tokens)
    _tools(request, body)
    if options.stream:
        body["stream"] = True
    return AnthropicChatRequest(body=body, model=model, options=options)

"""OpenAI chat-completions request -> Gemini ``generateContent`` request (REST JSON).

Every field of the OpenAI request is translated, or rejected with a :class:`TranslationError`
naming it; nothing that changes the answer is dropped. Decisions where the two APIs differ:

- ``system`` and ``developer`` messages, wherever they stand, become ``systemInstruction``
  parts in order; consecutive messages of one Gemini role are merged into one content, so the
  answers to parallel tool calls form one turn; messages with no content are left out.
- Images and files must be inline ``data:`` URLs (``inlineData``): Gemini cannot fetch
  arbitrary URLs, so ``http(s)`` image URLs and OpenAI ``file_id``\\ s are rejected.
  ``image_url.detail`` is a resolution hint with no Gemini 2.x equivalent and is not sent.
- Tool results become ``functionResponse`` parts ``{"result": <content>}`` named after the
  call they answer (looked up by ``tool_call_id``). A tool call's
  ``extra_content.google.thought_signature`` (where :mod:`.chat_response` keeps Gemini's
  ``thoughtSignature``, as Google's own OpenAI endpoint does) is sent back with the call.
- ``max_tokens`` and ``max_completion_tokens`` both set: the smaller wins.
- ``reasoning_effort`` sets ``thinkingConfig.thinkingBudget`` (none 0, minimal and low 1024,
  medium 8192, high 24576, xhigh 32768: the budgets of Google's OpenAI endpoint).
- ``parallel_tool_calls: false`` has no Gemini switch; the response translation keeps only the
  first function call of each candidate.
- ``tools[].function.strict`` is accepted; Gemini follows ``parametersJsonSchema`` but does
  not promise strict adherence.
- Fields that do not change the answer are accepted and not sent: ``user``,
  ``safety_identifier``, ``metadata``, ``store``, ``prompt_cache_key``,
  ``prompt_cache_retention``, ``service_tier``, ``stream_options.include_obfuscation`` and a
  message's ``name``.
- ``logprobs``, ``logit_bias``, ``audio``, ``prediction``, ``web_search_options``, ``functions``
  and ``function_call`` are rejected when set.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from .errors import TranslationError

__all__ = ["GeminiChatRequest", "chat_request_to_gemini"]

_ADVISORY: Final = frozenset(
    {
        "user",
        "safety_identifier",
        "metadata",
        "store",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
    }
)
_HANDLED: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "seed",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "presence_penalty",
        "frequency_penalty",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "modalities",
    }
)
_THINKING_BUDGETS: Final = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}
_AUDIO_MIME: Final = {"wav": "audio/wav", "mp3": "audio/mp3"}
MAX_CANDIDATES: Final = 8
"""Gemini's largest ``candidateCount``."""


@dataclass(frozen=True, slots=True)
class GeminiChatRequest:
    """An OpenAI chat request translated for Gemini, with what the answer's translation needs."""

    body: dict[str, Any]
    """The ``generateContent`` / ``streamGenerateContent`` JSON body."""
    model: str
    """The model the OpenAI request named (routing picks the Gemini model)."""
    stream: bool
    include_usage: bool
    """The client asked for the final usage chunk (``stream_options.include_usage``)."""
    parallel_tool_calls: bool
    """``False``: keep only the first function call of each candidate."""
    n: int


def _fail(param: str, message: str, code: str = "invalid_value") -> NoReturn:
    raise TranslationError(message, param=param, code=code)


def _unsupported(param: str, message: str) -> NoReturn:
    raise TranslationError(message, param=param, code="unsupported_parameter")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, param: str, low: float, high: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        _fail(param, f"must be a number from {low:g} to {high:g}")
    return value


def _mapping(value: Any, param: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(param, "must be an object")
    return value


def _list(value: Any, param: str) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        _fail(param, "must be an array")
    return value


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        _fail(param, "must be a string")
    return value


def _only_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            _unsupported(f"{where}.{key}" if where else str(key), "is not supported")


# -- content parts ------------------------------------------------------------------------


def _data_url(url: str, param: str) -> dict[str, Any]:
    if not url.startswith("data:"):
        if url.startswith(("http://", "https://")):
            _unsupported(
                param,
                "Gemini cannot fetch URLs; send the content inline as a data: URL "
                "(data:<mime type>;base64,<data>)",
            )
        _fail(param, "must be a data: URL (data:<mime type>;base64,<data>)")
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not mime or not data:
        _fail(param, "must be a base64 data: URL (data:<mime type>;base64,<data>)")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _text_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    _only_keys(part, frozenset({"type", "text"}), where)
    return {"text": _string(part.get("text"), f"{where}.text")}


def _user_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return _text_part(part, where)
    if kind == "image_url":
        _only_keys(part, frozenset({"type", "image_url"}), where)
        image = _mapping(part.get("image_url"), f"{where}.image_url")
        _only_keys(image, frozenset({"url", "detail"}), f"{where}.image_url")
        detail = image.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            _fail(f"{where}.image_url.detail", "must be auto, low or high")
        url = _string(image.get("url"), f"{where}.image_url.url")
        return _data_url(url, f"{where}.image_url.url")
    if kind == "input_audio":
        _only_keys(part, frozenset({"type", "input_audio"}), where)
        audio = _mapping(part.get("input_audio"), f"{where}.input_audio")
        _only_keys(audio, frozenset({"data", "format"}), f"{where}.input_audio")
        fmt = audio.get("format")
        if fmt not in _AUDIO_MIME:
            _fail(f"{where}.input_audio.format", "must be wav or mp3")
        data = _string(audio.get("data"), f"{where}.input_audio.data")
        return {"inlineData": {"mimeType": _AUDIO_MIME[fmt], "data": data}}
    if kind == "file":
        _only_keys(part, frozenset({"type", "file"}), where)
        file = _mapping(part.get("file"), f"{where}.file")
        _only_keys(file, frozenset({"file_data", "file_id", "filename"}), f"{where}.file")
        if file.get("file_id") is not None:
            _unsupported(f"{where}.file.file_id", "OpenAI file ids mean nothing to Gemini")
        data = _string(file.get("file_data"), f"{where}.file.file_data")
        if data.startswith("data:"):
            return _data_url(data, f"{where}.file.file_data")
        filename = file.get("filename")
        mime = mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None
        if mime is None or not data:
            _fail(f"{where}.file.file_data", "must be a data: URL, or base64 with a filename")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if isinstance(kind, str):
        _unsupported(f"{where}.type", f"content part type {kind!r} is not supported")
    _fail(f"{where}.type", "must be a string")


def _parts(
    content: Any, where: str, *, role: str, allow_null: bool = False
) -> list[dict[str, Any]]:
    if content is None:
        if allow_null:
            return []
        _fail(where, "is required")
    if isinstance(content, str):
        return [{"text": content}] if content else []
    items = _list(content, where)
    parts: list[dict[str, Any]] = []
    for j, raw in enumerate(items):
        param = f"{where}[{j}]"
        item = _mapping(raw, param)
        kind = item.get("type")
        if role == "user":
            part = _user_part(item, param)
        elif kind == "text":
            part = _text_part(item, param)
        elif kind == "refusal" and role == "assistant":
            _only_keys(item, frozenset({"type", "refusal"}), param)
            part = {"text": _string(item.get("refusal"), f"{param}.refusal")}
        elif isinstance(kind, str):
            _unsupported(f"{param}.type", f"content part type {kind!r} is not allowed here")
        else:
            _fail(f"{param}.type", "must be a string")
        if part.get("text") != "":
            parts.append(part)
    return parts


# -- messages -----------------------------------------------------------------------------

_SYSTEM_KEYS: Final = frozenset({"role", "content", "name"})
_ASSISTANT_KEYS: Final = frozenset(
    {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}
)
_TOOL_KEYS: Final = frozenset({"role", "content", "tool_call_id"})


def _tool_calls(calls: Any, where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    parts = []
    for k, raw in enumerate(_list(calls, where)):
        param = f"{where}[{k}]"
        call = _mapping(raw, param)
        _only_keys(call, frozenset({"id", "type", "function", "extra_content"}), param)
        if call.get("type", "function") != "function":
            _unsupported(f"{param}.type", "only function tool calls are supported")
        call_id = _string(call.get("id"), f"{param}.id")
        function = _mapping(call.get("function"), f"{param}.function")
        _only_keys(function, frozenset({"name", "arguments"}), f"{param}.function")
        name = _string(function.get("name"), f"{param}.function.name")
        arguments = _string(function.get("arguments"), f"{param}.function.arguments")
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            _fail(f"{param}.function.arguments", "must be a JSON object")
        names[call_id] = name
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        extra = call.get("extra_content")
        google = None if extra is None else _mapping(extra, f"{param}.extra_content").get("google")
        if google is not None:
            google = _mapping(google, f"{param}.extra_content.google")
            signature = google.get("thought_signature")
            if signature is not None:
                part["thoughtSignature"] = _string(
                    signature, f"{param}.extra_content.google.thought_signature"
                )
        parts.append(part)
    return parts


def _messages(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, raw in enumerate(messages):
        where = f"messages[{i}]"
        message = _mapping(raw, where)
        role = message.get("role")
        if role in ("system", "developer"):
            _only_keys(message, _SYSTEM_KEYS, where)
            system.extend(_parts(message.get("content"), f"{where}.content", role="system"))
        elif role == "user":
            _only_keys(message, _SYSTEM_KEYS, where)
            add("user", _parts(message.get("content"), f"{where}.content", role="user"))
        elif role == "assistant":
            _only_keys(message, _ASSISTANT_KEYS, where)
            for key in ("audio", "function_call"):
                if message.get(key) is not None:
                    _unsupported(f"{where}.{key}", "is not supported")
            parts = _parts(
                message.get("content"), f"{where}.content", role="assistant", allow_null=True
            )
            refusal = message.get("refusal")
            if refusal is not None:
                text = _string(refusal, f"{where}.refusal")
                if text:
                    parts.append({"text": text})
            calls = message.get("tool_calls")
            if calls is not None:
                parts.extend(_tool_calls(calls, f"{where}.tool_calls", names))
            add("model", parts)
        elif role == "tool":
            _only_keys(message, _TOOL_KEYS, where)
            call_id = _string(message.get("tool_call_id"), f"{where}.tool_call_id")
            if call_id not in names:
                _fail(f"{where}.tool_call_id", "answers no earlier assistant tool call")
            content = message.get("content")
            text = "".join(
                p["text"] for p in _parts(content, f"{where}.content", role="tool") if "text" in p
            )
            add(
                "user",
                [{"functionResponse": {"name": names[call_id], "response": {"result": text}}}],
            )
        elif role == "function":
            _unsupported(f"{where}.role", "function messages are deprecated; use tool messages")
        else:
            _fail(f"{where}.role", "must be system, developer, user, assistant or tool")
    return system, contents


# -- tools ----------------------------------------------------------------------------------


def _tools(tools: Sequence[Any]) -> tuple[list[dict[str, Any]], set[str]]:
    declarations: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, raw in enumerate(tools):
        where = f"tools[{i}]"
        tool = _mapping(raw, where)
        if tool.get("type") != "function":
            _unsupported(f"{where}.type", "only function tools are supported")
        _only_keys(tool, frozenset({"type", "function"}), where)
        function = _mapping(tool.get("function"), f"{where}.function")
        _only_keys(
            function,
            frozenset({"name", "description", "parameters", "strict"}),
            f"{where}.function",
        )
        name = _string(function.get("name"), f"{where}.function.name")
        if not name:
            _fail(f"{where}.function.name", "must not be empty")
        declaration: dict[str, Any] = {"name": name}
        if function.get("description") is not None:
            declaration["description"] = _string(
                function["description"], f"{where}.function.description"
            )
        if function.get("parameters") is not None:
            params = _mapping(function["parameters"], f"{where}.function.parameters")
            declaration["parametersJsonSchema"] = dict(params)
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            _fail(f"{where}.function.strict", "must be a boolean")
        declarations.append(declaration)
        names.add(name)
    return declarations, names


def _named(choice: Mapping[str, Any], where: str, known: set[str]) -> str:
    if choice.get("type") != "function":
        _unsupported(f"{where}.type", "only function tools can be chosen")
    function = _mapping(choice.get("function"), f"{where}.function")
    name = _string(function.get("name"), f"{where}.function.name")
    if name not in known:
        _fail(f"{where}.function.name", f"names no tool in tools: {name!r}")
    return name


def _tool_config(
    choice: Any, known: set[str], declarations: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    if choice is None or choice == "auto":
        return None, declarations
    if choice == "none":
        return ({"functionCallingConfig": {"mode": "NONE"}} if known else None), declarations
    if not known:
        _fail("tool_choice", "needs tools")
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}, declarations
    if isinstance(choice, str):
        _fail("tool_choice", "must be none, auto, required or an object")
    choice = _mapping(choice, "tool_choice")
    if choice.get("type") == "allowed_tools":
        allowed = _mapping(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            _fail("tool_choice.allowed_tools.mode", "must be auto or required")
        where = "tool_choice.allowed_tools.tools"
        names = [
            _named(_mapping(t, f"{where}[{k}]"), f"{where}[{k}]", known)
            for k, t in enumerate(_list(allowed.get("tools"), where))
        ]
        if mode == "required":
            return {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}
            }, declarations
        # AUTO takes no allowedFunctionNames: offer only the allowed declarations instead.
        return None, [d for d in declarations if d["name"] in names]
    _only_keys(choice, frozenset({"type", "function"}), "tool_choice")
    name = _named(choice, "tool_choice", known)
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}, declarations


# -- the request ----------------------------------------------------------------------------


def _response_format(value: Any, config: dict[str, Any]) -> None:
    fmt = _mapping(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        _only_keys(fmt, frozenset({"type"}), "response_format")
    elif kind == "json_object":
        _only_keys(fmt, frozenset({"type"}), "response_format")
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        _only_keys(fmt, frozenset({"type", "json_schema"}), "response_format")
        spec = _mapping(fmt.get("json_schema"), "response_format.json_schema")
        _only_keys(
            spec,
            frozenset({"name", "description", "schema", "strict"}),
            "response_format.json_schema",
        )
        _string(spec.get("name"), "response_format.json_schema.name")
        config["responseMimeType"] = "application/json"
        if spec.get("schema") is not None:
            schema = _mapping(spec["schema"], "response_format.json_schema.schema")
            config["responseJsonSchema"] = dict(schema)
    else:
        _unsupported("response_format.type", "must be text, json_object or json_schema")


def _generation_config(request: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.get("temperature") is not None:
        config["temperature"] = _number(request["temperature"], "temperature", 0, 2)
    if request.get("top_p") is not None:
        config["topP"] = _number(request["top_p"], "top_p", 0, 1)
    for field, key in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if request.get(field) is not None:
            config[key] = _number(request[field], field, -2, 2)
    limits = []
    for field in ("max_tokens", "max_completion_tokens"):
        value = request.get(field)
        if value is not None:
            if not _is_int(value) or value < 1:
                _fail(field, "must be a positive integer")
            limits.append(value)
    if limits:
        config["maxOutputTokens"] = min(limits)
    stop = request.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(_list(stop, "stop"))
        for k, s in enumerate(stops):
            _string(s, f"stop[{k}]")
        if stops:
            config["stopSequences"] = stops
    n = request.get("n")
    if n is not None:
        if not _is_int(n) or not 1 <= n <= MAX_CANDIDATES:
            _fail("n", f"must be an integer from 1 to {MAX_CANDIDATES}")
        if n != 1:
            config["candidateCount"] = n
    seed = request.get("seed")
    if seed is not None:
        if not _is_int(seed):
            _fail("seed", "must be an integer")
        config["seed"] = seed
    if request.get("response_format") is not None:
        _response_format(request["response_format"], config)
    effort = request.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGETS:
            _fail("reasoning_effort", f"must be one of {', '.join(_THINKING_BUDGETS)}")
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return config


def _check_unsupported(request: Mapping[str, Any]) -> None:
    for key in request:
        if key not in _HANDLED and key not in _ADVISORY:
            _unsupported(str(key), "is not supported by the Gemini translation")
    if request.get("logprobs"):
        _unsupported("logprobs", "log probabilities are not translated")
    if request.get("top_logprobs") is not None:
        _unsupported("top_logprobs", "log probabilities are not translated")
    if request.get("logit_bias"):
        _unsupported("logit_bias", "Gemini has no logit bias")
    modalities = request.get("modalities")
    if modalities is not None and list(_list(modalities, "modalities")) != ["text"]:
        _unsupported("modalities", "only text output is supported")


def chat_request_to_gemini(request: Mapping[str, Any]) -> GeminiChatRequest:
    """Translate an OpenAI ``/v1/chat/completions`` body; raises :class:`TranslationError`."""
    request = _mapping(request, "body")
    _check_unsupported(request)
    model = _string(request.get("model"), "model")
    stream = request.get("stream")
    if stream is not None and not isinstance(stream, bool):
        _fail("stream", "must be a boolean")
    include_usage = False
    if request.get("stream_options") is not None:
        options = _mapping(request["stream_options"], "stream_options")
        _only_keys(options, frozenset({"include_usage", "include_obfuscation"}), "stream_options")
        include_usage = options.get("include_usage") is True
    parallel = request.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        _fail("parallel_tool_calls", "must be a boolean")
    messages = _list(request.get("messages"), "messages")
    system, contents = _messages(messages)
    if not contents:
        _fail("messages", "must hold at least one user, assistant or tool message with content")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = request.get("tools")
    declarations, known = _tools(_list(tools, "tools")) if tools is not None else ([], set())
    tool_config, declarations = _tool_config(request.get("tool_choice"), known, declarations)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    return GeminiChatRequest(
        body=body,
        model=model,
        stream=stream is True,
        include_usage=include_usage,
        parallel_tool_calls=parallel is not False,
        n=config.get("candidateCount", 1),
    )

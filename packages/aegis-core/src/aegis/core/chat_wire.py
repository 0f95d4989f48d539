"""OpenAI chat-completions wire pieces shared by every adapter that translates chat requests.

The Gemini and Anthropic adapters both serve OpenAI ``/v1/chat/completions`` clients from
another provider. What they share lives here, once: checks over untrusted request JSON that
raise the adapter's own error (:class:`JsonChecks`), the readers of the request parts whose
meaning is the same whatever the provider (function tools, tool calls, ``tool_choice``,
``data:`` URLs), and the pieces of the answer (ids, the ``usage`` object, SSE events, the error
type of a status).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from aegis.core.pricing import Usage

__all__ = [
    "CHAT_ADVISORY_FIELDS",
    "CHAT_REQUEST_FIELDS",
    "SSE_DONE",
    "ChatOptions",
    "ChatToolChoice",
    "FunctionCall",
    "FunctionTool",
    "JsonChecks",
    "assistant_message",
    "chat_sse_event",
    "check_chat_fields",
    "merge_turn",
    "new_call_id",
    "new_completion_id",
    "openai_error_type",
    "openai_usage",
    "read_chat_options",
    "read_function_call",
    "read_function_tool",
    "read_tool_choice",
    "split_data_url",
    "usage_chunk",
]

SSE_DONE: Final = b"data: [DONE]\n\n"
"""The event that ends an OpenAI chat stream."""

_OPENAI_TYPE: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
}

CHAT_ADVISORY_FIELDS: Final = frozenset(
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
"""Chat request fields that do not change the answer: accepted, and not sent on."""
CHAT_REQUEST_FIELDS: Final = frozenset(
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
"""Chat request fields a translator reads (translating each, or refusing it when set)."""

ErrorFactory = Callable[..., Exception]
"""Builds the adapter's error: ``factory(message, param=..., code=...)``."""


class JsonChecks:
    """Checks over untrusted OpenAI request JSON; each failure raises the adapter's error
    (built by ``error(message, param=..., code=...)``)."""

    __slots__ = ("_error",)

    def __init__(self, error: ErrorFactory) -> None:
        self._error = error

    def fail(self, param: str, message: str, code: str = "invalid_value") -> NoReturn:
        """Reject ``param``: its value is wrong."""
        raise self._error(message, param=param, code=code)

    def unsupported(self, param: str, message: str) -> NoReturn:
        """Reject ``param``: valid OpenAI, but the provider has no equivalent."""
        raise self._error(message, param=param, code="unsupported_parameter")

    @staticmethod
    def is_int(value: Any) -> bool:
        """An int that is not a bool."""
        return isinstance(value, int) and not isinstance(value, bool)

    def number(self, value: Any, param: str, low: float, high: float) -> float | int:
        """``value`` as a number within ``[low, high]``."""
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            self.fail(param, f"must be a number from {low:g} to {high:g}")
        return value

    def mapping(self, value: Any, param: str) -> Mapping[str, Any]:
        """``value`` as a JSON object."""
        if not isinstance(value, Mapping):
            self.fail(param, "must be an object")
        return value

    def array(self, value: Any, param: str) -> Sequence[Any]:
        """``value`` as a JSON array."""
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            self.fail(param, "must be an array")
        return value

    def string(self, value: Any, param: str) -> str:
        """``value`` as a string."""
        if not isinstance(value, str):
            self.fail(param, "must be a string")
        return value

    def only_keys(self, obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        """Reject the first key of ``obj`` outside ``allowed``."""
        for key in obj:
            if key not in allowed:
                self.unsupported(f"{where}.{key}" if where else str(key), "is not supported")


# -- request parts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """The options of a chat request every provider reads alike."""

    stream: bool
    include_usage: bool
    """The client asked for the final usage chunk (``stream_options.include_usage``)."""
    max_output_tokens: int | None
    """The smaller of ``max_tokens`` and ``max_completion_tokens`` (``None``: neither)."""
    stop: tuple[str, ...]


def check_chat_fields(checks: JsonChecks, request: Mapping[str, Any], provider: str) -> None:
    """Refuse fields no translation carries (unknown keys, log probabilities, logit bias,
    output other than text), naming ``provider`` in the message."""
    for key in request:
        if key not in CHAT_REQUEST_FIELDS and key not in CHAT_ADVISORY_FIELDS:
            checks.unsupported(str(key), f"is not supported by the {provider} translation")
    if request.get("logprobs"):
        checks.unsupported("logprobs", "log probabilities are not translated")
    if request.get("top_logprobs") is not None:
        checks.unsupported("top_logprobs", "log probabilities are not translated")
    if request.get("logit_bias"):
        checks.unsupported("logit_bias", f"{provider} has no logit bias")
    modalities = request.get("modalities")
    if modalities is not None and list(checks.array(modalities, "modalities")) != ["text"]:
        checks.unsupported("modalities", "only text output is supported")


def read_chat_options(checks: JsonChecks, request: Mapping[str, Any]) -> ChatOptions:
    """``stream``, ``stream_options``, the output limit and ``stop`` of a chat request."""
    stream = request.get("stream")
    if stream is not None and not isinstance(stream, bool):
        checks.fail("stream", "must be a boolean")
    include_usage = False
    if request.get("stream_options") is not None:
        options = checks.mapping(request["stream_options"], "stream_options")
        checks.only_keys(
            options, frozenset({"include_usage", "include_obfuscation"}), "stream_options"
        )
        include_usage = options.get("include_usage") is True
    limits = []
    for key in ("max_tokens", "max_completion_tokens"):
        value = request.get(key)
        if value is not None:
            if not JsonChecks.is_int(value) or value < 1:
                checks.fail(key, "must be a positive integer")
            limits.append(value)
    stop = request.get("stop")
    stops: list[str] = []
    if stop is not None:
        for k, s in enumerate([stop] if isinstance(stop, str) else checks.array(stop, "stop")):
            stops.append(checks.string(s, f"stop[{k}]"))
    return ChatOptions(
        stream=stream is True,
        include_usage=include_usage,
        max_output_tokens=min(limits) if limits else None,
        stop=tuple(stops),
    )


def merge_turn(turns: list[dict[str, Any]], role: str, items: list[Any], key: str) -> None:
    """Append ``items`` to ``turns`` as a turn of ``role`` (their list under ``key``), merged
    into the last turn when it has the same role; nothing for no items."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """One ``tools[]`` entry of type ``function``."""

    name: str
    description: str | None
    parameters: dict[str, Any] | None
    """The JSON schema of the arguments, as sent."""


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One ``tool_calls[]`` entry of an assistant message."""

    id: str
    name: str
    arguments: dict[str, Any]
    """The arguments, parsed (OpenAI sends them as a JSON string)."""
    extra: Mapping[str, Any] | None
    """``extra_content``, where providers keep what the call must carry back."""


@dataclass(frozen=True, slots=True)
class ChatToolChoice:
    """``tool_choice`` read: may the model call tools, must it, and which."""

    mode: Literal["auto", "none", "required"]
    names: tuple[str, ...] | None = None
    """The tools it may choose from (``None``: any of ``tools``)."""


def read_function_tool(checks: JsonChecks, raw: Any, where: str) -> FunctionTool:
    """A ``tools[]`` entry; only function tools are accepted."""
    tool = checks.mapping(raw, where)
    if tool.get("type") != "function":
        checks.unsupported(f"{where}.type", "only function tools are supported")
    checks.only_keys(tool, frozenset({"type", "function"}), where)
    function = checks.mapping(tool.get("function"), f"{where}.function")
    checks.only_keys(
        function, frozenset({"name", "description", "parameters", "strict"}), f"{where}.function"
    )
    name = checks.string(function.get("name"), f"{where}.function.name")
    if not name:
        checks.fail(f"{where}.function.name", "must not be empty")
    description = None
    if function.get("description") is not None:
        description = checks.string(function["description"], f"{where}.function.description")
    parameters = None
    if function.get("parameters") is not None:
        parameters = dict(checks.mapping(function["parameters"], f"{where}.function.parameters"))
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        checks.fail(f"{where}.function.strict", "must be a boolean")
    return FunctionTool(name, description, parameters)


def read_function_call(checks: JsonChecks, raw: Any, param: str) -> FunctionCall:
    """An assistant message's ``tool_calls[]`` entry, its arguments parsed."""
    call = checks.mapping(raw, param)
    checks.only_keys(call, frozenset({"id", "type", "function", "extra_content"}), param)
    if call.get("type", "function") != "function":
        checks.unsupported(f"{param}.type", "only function tool calls are supported")
    call_id = checks.string(call.get("id"), f"{param}.id")
    function = checks.mapping(call.get("function"), f"{param}.function")
    checks.only_keys(function, frozenset({"name", "arguments"}), f"{param}.function")
    name = checks.string(function.get("name"), f"{param}.function.name")
    arguments = checks.string(function.get("arguments"), f"{param}.function.arguments")
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        checks.fail(f"{param}.function.arguments", "must be a JSON object")
    extra = call.get("extra_content")
    if extra is not None:
        extra = checks.mapping(extra, f"{param}.extra_content")
    return FunctionCall(call_id, name, args, extra)


def _chosen(checks: JsonChecks, choice: Mapping[str, Any], where: str, known: set[str]) -> str:
    if choice.get("type") != "function":
        checks.unsupported(f"{where}.type", "only function tools can be chosen")
    function = checks.mapping(choice.get("function"), f"{where}.function")
    name = checks.string(function.get("name"), f"{where}.function.name")
    if name not in known:
        checks.fail(f"{where}.function.name", f"names no tool in tools: {name!r}")
    return name


def read_tool_choice(checks: JsonChecks, raw: Any, known: set[str]) -> ChatToolChoice:
    """``tool_choice`` against the names ``tools`` declared."""
    if raw is None or raw == "auto":
        return ChatToolChoice("auto")
    if raw == "none":
        return ChatToolChoice("none")
    if not known:
        checks.fail("tool_choice", "needs tools")
    if raw == "required":
        return ChatToolChoice("required")
    if isinstance(raw, str):
        checks.fail("tool_choice", "must be none, auto, required or an object")
    choice = checks.mapping(raw, "tool_choice")
    if choice.get("type") == "allowed_tools":
        allowed = checks.mapping(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        mode = allowed.get("mode")
        if mode not in ("auto", "required"):
            checks.fail("tool_choice.allowed_tools.mode", "must be auto or required")
        where = "tool_choice.allowed_tools.tools"
        names = tuple(
            _chosen(checks, checks.mapping(t, f"{where}[{k}]"), f"{where}[{k}]", known)
            for k, t in enumerate(checks.array(allowed.get("tools"), where))
        )
        return ChatToolChoice("required" if mode == "required" else "auto", names)
    checks.only_keys(choice, frozenset({"type", "function"}), "tool_choice")
    return ChatToolChoice("required", (_chosen(checks, choice, "tool_choice", known),))


def split_data_url(url: str) -> tuple[str, str] | None:
    """``(mime type, base64 data)`` of a ``data:<mime>;base64,<data>`` URL, else ``None``."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not mime or not data:
        return None
    return mime, data


# -- answer parts -----------------------------------------------------------------------------


def new_completion_id() -> str:
    """A fresh ``chatcmpl-...`` id."""
    return "chatcmpl-" + secrets.token_hex(12)


def new_call_id() -> str:
    """A fresh ``call_...`` tool call id."""
    return "call_" + secrets.token_hex(12)


def openai_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object for an Aegis :class:`~aegis.core.Usage`."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def assistant_message(texts: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A choice's ``message``: the texts joined (``None`` for only tool calls), the calls."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return message


def usage_chunk(completion_id: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    """The last chunk of a stream whose client asked for usage (``choices: []``)."""
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": openai_usage(usage),
    }


def chat_sse_event(data: Mapping[str, Any]) -> bytes:
    """One ``data:`` event carrying ``data`` as JSON."""
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def openai_error_type(status: int) -> str:
    """The OpenAI error ``type`` that goes with an HTTP status."""
    return _OPENAI_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")

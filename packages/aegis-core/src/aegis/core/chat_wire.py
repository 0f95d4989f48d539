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
    "SSE_DONE",
    "ChatToolChoice",
    "FunctionCall",
    "FunctionTool",
    "JsonChecks",
    "chat_sse_event",
    "new_call_id",
    "new_completion_id",
    "openai_error_type",
    "openai_usage",
    "read_function_call",
    "read_function_tool",
    "read_tool_choice",
    "split_data_url",
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


def chat_sse_event(data: Mapping[str, Any]) -> bytes:
    """One ``data:`` event carrying ``data`` as JSON."""
    return (
        b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def openai_error_type(status: int) -> str:
    """The OpenAI error ``type`` that goes with an HTTP status."""
    return _OPENAI_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")

"""OpenAI chat messages -> Gemini ``contents`` and ``systemInstruction`` parts.

See :mod:`.chat_request` for the decisions where the two APIs differ.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aegis.core import merge_turn, read_function_call, split_data_url

from ._checks import CHECKS, array, fail, mapping, only_keys, string, unsupported

__all__ = ["translate_messages"]

_AUDIO_MIME: Final = {"wav": "audio/wav", "mp3": "audio/mp3"}


# -- content parts ------------------------------------------------------------------------


def _data_url(url: str, param: str) -> dict[str, Any]:
    if not url.startswith("data:") and url.startswith(("http://", "https://")):
        unsupported(
            param,
            "Gemini cannot fetch URLs; send the content inline as a data: URL "
            "(data:<mime type>;base64,<data>)",
        )
    inline = split_data_url(url)
    if inline is None:
        fail(param, "must be a base64 data: URL (data:<mime type>;base64,<data>)")
    return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}


def _text_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    only_keys(part, frozenset({"type", "text"}), where)
    return {"text": string(part.get("text"), f"{where}.text")}


def _user_part(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return _text_part(part, where)
    if kind == "image_url":
        only_keys(part, frozenset({"type", "image_url"}), where)
        image = mapping(part.get("image_url"), f"{where}.image_url")
        only_keys(image, frozenset({"url", "detail"}), f"{where}.image_url")
        detail = image.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            fail(f"{where}.image_url.detail", "must be auto, low or high")
        url = string(image.get("url"), f"{where}.image_url.url")
        return _data_url(url, f"{where}.image_url.url")
    if kind == "input_audio":
        only_keys(part, frozenset({"type", "input_audio"}), where)
        audio = mapping(part.get("input_audio"), f"{where}.input_audio")
        only_keys(audio, frozenset({"data", "format"}), f"{where}.input_audio")
        fmt = audio.get("format")
        if not isinstance(fmt, str) or fmt not in _AUDIO_MIME:
            fail(f"{where}.input_audio.format", "must be wav or mp3")
        data = string(audio.get("data"), f"{where}.input_audio.data")
        return {"inlineData": {"mimeType": _AUDIO_MIME[fmt], "data": data}}
    if kind == "file":
        only_keys(part, frozenset({"type", "file"}), where)
        file = mapping(part.get("file"), f"{where}.file")
        only_keys(file, frozenset({"file_data", "file_id", "filename"}), f"{where}.file")
        if file.get("file_id") is not None:
            unsupported(f"{where}.file.file_id", "OpenAI file ids mean nothing to Gemini")
        data = string(file.get("file_data"), f"{where}.file.file_data")
        if data.startswith("data:"):
            return _data_url(data, f"{where}.file.file_data")
        filename = file.get("filename")
        mime = mimetypes.guess_type(filename)[0] if isinstance(filename, str) else None
        if mime is None or not data:
            fail(f"{where}.file.file_data", "must be a data: URL, or base64 with a filename")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if isinstance(kind, str):
        unsupported(f"{where}.type", f"content part type {kind!r} is not supported")
    fail(f"{where}.type", "must be a string")


def _parts(
    content: Any, where: str, *, role: str, allow_null: bool = False
) -> list[dict[str, Any]]:
    if content is None:
        if allow_null:
            return []
        fail(where, "is required")
    if isinstance(content, str):
        return [{"text": content}] if content else []
    items = array(content, where)
    parts: list[dict[str, Any]] = []
    for j, raw in enumerate(items):
        param = f"{where}[{j}]"
        item = mapping(raw, param)
        kind = item.get("type")
        if role == "user":
            part = _user_part(item, param)
        elif kind == "text":
            part = _text_part(item, param)
        elif kind == "refusal" and role == "assistant":
            only_keys(item, frozenset({"type", "refusal"}), param)
            part = {"text": string(item.get("refusal"), f"{param}.refusal")}
        elif isinstance(kind, str):
            unsupported(f"{param}.type", f"content part type {kind!r} is not allowed here")
        else:
            fail(f"{param}.type", "must be a string")
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
    for k, raw in enumerate(array(calls, where)):
        param = f"{where}[{k}]"
        call = read_function_call(CHECKS, raw, param)
        names[call.id] = call.name
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        google = None if call.extra is None else call.extra.get("google")
        if google is not None:
            google = mapping(google, f"{param}.extra_content.google")
            signature = google.get("thought_signature")
            if signature is not None:
                part["thoughtSignature"] = string(
                    signature, f"{param}.extra_content.google.thought_signature"
                )
        parts.append(part)
    return parts


def translate_messages(
    messages: Sequence[Any],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``systemInstruction`` parts and the ``contents`` for an OpenAI message list."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        merge_turn(contents, role, parts, "parts")

    for i, raw in enumerate(messages):
        where = f"messages[{i}]"
        message = mapping(raw, where)
        role = message.get("role")
        if role in ("system", "developer"):
            only_keys(message, _SYSTEM_KEYS, where)
            system.extend(_parts(message.get("content"), f"{where}.content", role="system"))
        elif role == "user":
            only_keys(message, _SYSTEM_KEYS, where)
            add("user", _parts(message.get("content"), f"{where}.content", role="user"))
        elif role == "assistant":
            only_keys(message, _ASSISTANT_KEYS, where)
            for key in ("audio", "function_call"):
                if message.get(key) is not None:
                    unsupported(f"{where}.{key}", "is not supported")
            parts = _parts(
                message.get("content"), f"{where}.content", role="assistant", allow_null=True
            )
            refusal = message.get("refusal")
            if refusal is not None:
                text = string(refusal, f"{where}.refusal")
                if text:
                    parts.append({"text": text})
            calls = message.get("tool_calls")
            if calls is not None:
                parts.extend(_tool_calls(calls, f"{where}.tool_calls", names))
            add("model", parts)
        elif role == "tool":
            only_keys(message, _TOOL_KEYS, where)
            call_id = string(message.get("tool_call_id"), f"{where}.tool_call_id")
            if call_id not in names:
                fail(f"{where}.tool_call_id", "answers no earlier assistant tool call")
            content = message.get("content")
            text = "".join(
                p["text"] for p in _parts(content, f"{where}.content", role="tool") if "text" in p
            )
            add(
                "user",
                [{"functionResponse": {"name": names[call_id], "response": {"result": text}}}],
            )
        elif role == "function":
            unsupported(f"{where}.role", "function messages are deprecated; use tool messages")
        else:
            fail(f"{where}.role", "must be system, developer, user, assistant or tool")
    return system, contents

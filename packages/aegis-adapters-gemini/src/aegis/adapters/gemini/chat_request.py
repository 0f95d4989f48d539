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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aegis.core import check_chat_fields, read_chat_options

from ._checks import CHECKS, array, fail, is_int, mapping, number, only_keys, string, unsupported
from .chat_messages import translate_messages
from .chat_tools import translate_tool_choice, translate_tools

__all__ = ["GeminiChatRequest", "chat_request_to_gemini"]

_THINKING_BUDGETS: Final = {
    "none": 0,
    "minimal": 1024,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}
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


# -- the request ----------------------------------------------------------------------------


def _response_format(value: Any, config: dict[str, Any]) -> None:
    fmt = mapping(value, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        only_keys(fmt, frozenset({"type"}), "response_format")
    elif kind == "json_object":
        only_keys(fmt, frozenset({"type"}), "response_format")
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        only_keys(fmt, frozenset({"type", "json_schema"}), "response_format")
        spec = mapping(fmt.get("json_schema"), "response_format.json_schema")
        only_keys(
            spec,
            frozenset({"name", "description", "schema", "strict"}),
            "response_format.json_schema",
        )
        string(spec.get("name"), "response_format.json_schema.name")
        config["responseMimeType"] = "application/json"
        if spec.get("schema") is not None:
            schema = mapping(spec["schema"], "response_format.json_schema.schema")
            config["responseJsonSchema"] = dict(schema)
    else:
        unsupported("response_format.type", "must be text, json_object or json_schema")


def _generation_config(request: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.get("temperature") is not None:
        config["temperature"] = number(request["temperature"], "temperature", 0, 2)
    if request.get("top_p") is not None:
        config["topP"] = number(request["top_p"], "top_p", 0, 1)
    for field, key in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if request.get(field) is not None:
            config[key] = number(request[field], field, -2, 2)
    options = read_chat_options(CHECKS, request)
    if options.max_output_tokens is not None:
        config["maxOutputTokens"] = options.max_output_tokens
    if options.stop:
        config["stopSequences"] = list(options.stop)
    n = request.get("n")
    if n is not None:
        if not is_int(n) or not 1 <= n <= MAX_CANDIDATES:
            fail("n", f"must be an integer from 1 to {MAX_CANDIDATES}")
        if n != 1:
            config["candidateCount"] = n
    seed = request.get("seed")
    if seed is not None:
        if not is_int(seed):
            fail("seed", "must be an integer")
        config["seed"] = seed
    if request.get("response_format") is not None:
        _response_format(request["response_format"], config)
    effort = request.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _THINKING_BUDGETS:
            fail("reasoning_effort", f"must be one of {', '.join(_THINKING_BUDGETS)}")
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return config


def _checkunsupported(request: Mapping[str, Any]) -> None:
    check_chat_fields(CHECKS, request, "Gemini")


def chat_request_to_gemini(request: Mapping[str, Any]) -> GeminiChatRequest:
    """Translate an OpenAI ``/v1/chat/completions`` body; raises :class:`TranslationError`."""
    request = mapping(request, "body")
    _checkunsupported(request)
    model = string(request.get("model"), "model")
    options = read_chat_options(CHECKS, request)
    parallel = request.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        fail("parallel_tool_calls", "must be a boolean")
    messages = array(request.get("messages"), "messages")
    system, contents = translate_messages(messages)
    if not contents:
        fail("messages", "must hold at least one user, assistant or tool message with content")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    tools = request.get("tools")
    declarations, known = (
        translate_tools(array(tools, "tools")) if tools is not None else ([], set())
    )
    tool_config, declarations = translate_tool_choice(
        request.get("tool_choice"), known, declarations
    )
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
        stream=options.stream,
        include_usage=options.include_usage,
        parallel_tool_calls=parallel is not False,
        n=config.get("candidateCount", 1),
    )

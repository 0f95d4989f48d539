"""Worst-case token counts of an Anthropic Messages request, read from its JSON, no tokenizer.

Input is bounded from above by the UTF-8 length of every text the model reads (see
:func:`aegis.core.text_tokens_upper_bound`): system prompt, message text, tool definitions,
tool calls and results, earlier thinking (with its signature), search results, plus
per-message and reply overheads. What has no text to measure is bounded by constants or, where
no constant holds, marked unbounded (:attr:`MessagesEstimate.input_is_bounded`), and the caller
bounds it by the model's context window (Anthropic rejects longer prompts):

* an image costs ``width * height / 750`` tokens after Anthropic resizes it to its limit; the
  largest limit (Claude 4.7 and later: about 2576 px on the long edge, 4,784 tokens) is below
  :data:`IMAGE_TOKENS_UPPER_BOUND`, whatever the image's size or source;
* a PDF (base64, URL or file) is billed as the text and an image of every page; the page count
  is not in the body, so PDFs, files and URLs are unbounded. A plain-text document or a
  document made of content blocks is measured like any text;
* Anthropic-defined tools (bash, text editor, computer use, memory ...) carry no schema in the
  body: each adds at most :data:`BUILTIN_TOOL_TOKENS_UPPER_BOUND`; any tool adds the tool-use
  system prompt (:data:`TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND`);
* server tools (web search, web fetch, code execution, tool search), MCP servers and containers
  add results to the input that the body does not hold: unbounded.

Prompt-cache writes bill above plain input (1.25x for 5 minutes, 2x for an hour): a request
with a ``cache_control`` marker reserves its input at the dearest write price
(:meth:`MessagesEstimate.reserved_input_tokens`).

Output is ``max_tokens``, which the Messages API requires and enforces as a hard limit on each
response, thinking included (``budget_tokens`` must be below it). With interleaved thinking
(a beta) ``budget_tokens`` may exceed ``max_tokens``; the worst case is then their sum.
Numbers are read as the API reads them (JSON integers, no booleans, no floats) or refused,
never defaulted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Final

from aegis.core import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_OVERHEAD_TOKENS,
    ModelPrice,
    text_tokens_upper_bound,
)

from .errors import InvalidRequestBody

__all__ = [
    "BUILTIN_TOOL_TOKENS_UPPER_BOUND",
    "IMAGE_TOKENS_UPPER_BOUND",
    "MAX_COUNT",
    "MIN_THINKING_BUDGET_TOKENS",
    "TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND",
    "CountTokensEstimate",
    "MessagesEstimate",
    "estimate_count_tokens_request",
    "estimate_messages_request",
]

IMAGE_TOKENS_UPPER_BOUND: Final = 6_000
"""Tokens of one image at most: above Anthropic's largest per-image bill (4,784), with margin."""
BUILTIN_TOOL_TOKENS_UPPER_BOUND: Final = 2_048
"""Tokens one Anthropic-defined tool adds at most (computer use, the largest, adds ~1,230)."""
TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND: Final = 1_024
"""The tool-use system prompt Anthropic adds when a request has tools (~350 tokens)."""
MIN_THINKING_BUDGET_TOKENS: Final = 1_024
"""The smallest ``thinking.budget_tokens`` the API accepts."""
MAX_COUNT: Final = 2**31 - 1
"""No token count the API accepts is larger."""

_ROLES: Final = frozenset({"user", "assistant"})
# Client-side tools: the client runs them and sends their results back in the body.
_CUSTOM_TOOL_TYPES: Final = frozenset({None, "custom"})
_CLIENT_TOOL_PREFIXES: Final = ("bash_", "text_editor_", "computer_", "memory_")
# Blocks whose whole JSON (text, ids, encrypted content) bounds the tokens they stand for.
_JSON_BLOCKS: Final = frozenset(
    {
        "tool_use",
        "server_tool_use",
        "mcp_tool_use",
        "mcp_tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
    }
)
# Top-level keys that make the model read what the body does not hold.
_HIDDEN_INPUT_KEYS: Final = ("mcp_servers", "container")


def _json_bound(value: object) -> int:
    # ensure_ascii escapes are at least as long as the UTF-8 bytes they stand for.
    return len(json.dumps(value, separators=(",", ":")))


def _count(value: object, param: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestBody(f"{param}: expected an integer", param=param)
    if not minimum <= value <= MAX_COUNT:
        raise InvalidRequestBody(
            f"{param}: must be an integer from {minimum} to {MAX_COUNT}", param=param
        )
    return value


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestBody("model: Field required (a non-empty string)", param="model")
    return model


class _Tally:
    """Running input bound of one request body."""

    __slots__ = ("bounded", "cache_writes", "tokens")

    def __init__(self) -> None:
        self.tokens = REPLY_OVERHEAD_TOKENS
        self.bounded = True
        self.cache_writes = False

    def text(self, value: object) -> None:
        if isinstance(value, str):
            self.tokens += text_tokens_upper_bound(value)
        elif value is not None:
            self.tokens += _json_bound(value)

    def content(self, content: object, param: str) -> None:
        if isinstance(content, str):
            self.tokens += text_tokens_upper_bound(content)
        elif isinstance(content, list):
            for i, block in enumerate(content):
                self.block(block, f"{param}.{i}")
        elif content is not None:
            raise InvalidRequestBody(
                f"{param}: expected a string or an array of content blocks", param=param
            )

    def block(self, block: object, param: str) -> None:
        if not isinstance(block, Mapping):
            raise InvalidRequestBody(f"{param}: a content block must be an object", param=param)
        if block.get("cache_control") is not None:
            self.cache_writes = True
        kind = block.get("type")
        if kind == "text":
            self.text(block.get("text"))
            if block.get("citations") is not None:
                self.tokens += _json_bound(block["citations"])
        elif kind == "image":
            self.tokens += IMAGE_TOKENS_UPPER_BOUND
        elif kind == "document":
            self.document(block, param)
        elif kind == "tool_result":
            self.content(block.get("content"), f"{param}.content")
            self.tokens += _json_bound(block.get("tool_use_id"))
        elif kind in _JSON_BLOCKS:
            self.tokens += _json_bound(block)
        else:
            # container_upload (a file the body does not hold) and block types to come.
            self.tokens += _json_bound(block)
            self.bounded = False

    def document(self, block: Mapping[str, Any], param: str) -> None:
        for key in ("title", "context"):
            self.text(block.get(key))
        source = block.get("source")
        kind = source.get("type") if isinstance(source, Mapping) else None
        if kind == "text" and isinstance(source, Mapping):
            self.text(source.get("data"))
        elif kind == "content" and isinstance(source, Mapping):
            self.content(source.get("content"), f"{param}.source.content")
        else:
            # PDFs (base64, URL) and files: pages of text and images the body cannot measure.
            self.bounded = False

    def tools(self, tools: object) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise InvalidRequestBody("tools: expected an array", param="tools")
        if tools:
            self.tokens += TOOL_SYSTEM_PROMPT_TOKENS_UPPER_BOUND
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping):
                raise InvalidRequestBody(f"tools.{i}: a tool must be an object", param="tools")
            self.tokens += _json_bound(tool)
            if tool.get("cache_control") is not None:
                self.cache_writes = True
            kind = tool.get("type")
            if kind in _CUSTOM_TOOL_TYPES:
                continue
            self.tokens += BUILTIN_TOOL_TOKENS_UPPER_BOUND
            if not (isinstance(kind, str) and kind.startswith(_CLIENT_TOOL_PREFIXES)):
                self.bounded = False  # a server tool: its results enter the input unseen

    def prompt(self, body: Mapping[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequestBody("messages: expected a non-empty array", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
                raise InvalidRequestBody(
                    f"messages.{i}: expected an object with role 'user' or 'assistant'",
                    param=f"messages.{i}.role",
                )
            self.tokens += MESSAGE_OVERHEAD_TOKENS
            self.content(message.get("content"), f"messages.{i}.content")
        system = body.get("system")
        if system is not None:
            self.tokens += MESSAGE_OVERHEAD_TOKENS
            self.content(system, "system")
        self.tools(body.get("tools"))
        if body.get("tool_choice") is not None:
            self.tokens += _json_bound(body["tool_choice"])
        if body.get("cache_control") is not None:
            self.cache_writes = True  # automatic caching of the whole prompt
        for key in _HIDDEN_INPUT_KEYS:
            if body.get(key) is not None:
                self.bounded = False


def _thinking_budget(body: Mapping[str, Any]) -> int | None:
    thinking = body.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, Mapping):
        raise InvalidRequestBody("thinking: expected an object", param="thinking")
    if thinking.get("type") != "enabled":
        return None  # adaptive or disabled: thinking stays within max_tokens
    return _count(
        thinking.get("budget_tokens"),
        "thinking.budget_tokens",
        minimum=MIN_THINKING_BUDGET_TOKENS,
    )


@dataclass(frozen=True, slots=True)
class MessagesEstimate:
    """The worst case of one ``POST /v1/messages`` request, in tokens."""

    model: str
    input_tokens: int
    """Upper bound of the input the body holds (cache reads and writes included)."""
    max_tokens: int
    """The request's ``max_tokens``: the most output one response can bill."""
    thinking_budget_tokens: int | None = None
    """``thinking.budget_tokens`` of manual extended thinking; ``None`` without it."""
    input_is_bounded: bool = True
    """``False`` when the model also reads input the body does not hold."""
    cache_writes: bool = False
    """A ``cache_control`` marker asks to write the prompt cache (billed above plain input)."""
    stream: bool = False

    @property
    def output_tokens(self) -> int:
        """Worst-case billed output, thinking included: ``max_tokens``, or with interleaved
        thinking (a budget at or above ``max_tokens``) the budget on top of it."""
        budget = self.thinking_budget_tokens
        if budget is not None and budget >= self.max_tokens:
            return self.max_tokens + budget
        return self.max_tokens

    def input_tokens_within(self, context_window: int) -> int:
        """The input bound given the model's ``context_window`` (0: unknown): the window when
        the body does not hold all the input, else the smaller of the two."""
        if context_window <= 0:
            return self.input_tokens
        if not self.input_is_bounded:
            return context_window
        return min(self.input_tokens, context_window)

    def reserved_input_tokens(self, price: ModelPrice | None) -> int:
        """The input to reserve for, in plain-input tokens: the bound within the model's
        context window, scaled up to the dearest cache-write price when the request may write
        the cache (every token of it could be a 1-hour write). ``price`` ``None``: unscaled."""
        tokens = self.input_tokens_within(0 if price is None else price.context_window)
        if price is None or not self.cache_writes or price.input_per_mtok <= 0:
            return tokens
        dearest = max(
            p
            for p in (
                price.input_per_mtok,
                price.cache_write_per_mtok,
                price.cache_write_1h_per_mtok,
            )
            if p is not None
        )
        scaled = (Decimal(tokens) * dearest / price.input_per_mtok).to_integral_value(ROUND_CEILING)
        return int(scaled)


@dataclass(frozen=True, slots=True)
class CountTokensEstimate:
    """A ``POST /v1/messages/count_tokens`` request: free at Anthropic, so no output."""

    model: str
    input_tokens: int
    """Upper bound of the input it asks to count (for token rate limits, not for money)."""
    input_is_bounded: bool = True


def estimate_messages_request(body: Mapping[str, Any]) -> MessagesEstimate:
    """Worst case of a Messages body.

    Raises :class:`InvalidRequestBody` when the body cannot be bounded or the API would refuse
    it: no model, no ``max_tokens`` (the API requires it), a count that is not a JSON integer
    in range, messages that are not an array of user/assistant turns, malformed blocks.
    """
    model = _model(body)
    if "max_tokens" not in body:
        raise InvalidRequestBody("max_tokens: Field required", param="max_tokens")
    max_tokens = _count(body["max_tokens"], "max_tokens", minimum=1)
    tally = _Tally()
    tally.prompt(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestBody("stream: expected a boolean", param="stream")
    return MessagesEstimate(
        model=model,
        input_tokens=tally.tokens,
        max_tokens=max_tokens,
        thinking_budget_tokens=_thinking_budget(body),
        input_is_bounded=tally.bounded,
        cache_writes=tally.cache_writes,
        stream=stream is True,
    )


def estimate_count_tokens_request(body: Mapping[str, Any]) -> CountTokensEstimate:
    """The input a ``count_tokens`` body asks to count; raises :class:`InvalidRequestBody`
    for a body the API would refuse (the same checks as a Messages body, without
    ``max_tokens``)."""
    model = _model(body)
    tally = _Tally()
    tally.prompt(body)
    _thinking_budget(body)
    return CountTokensEstimate(
        model=model, input_tokens=tally.tokens, input_is_bounded=tally.bounded
    )

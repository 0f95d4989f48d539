"""Worst-case token counts of Gemini requests, read from their REST JSON (camelCase).

Input: every text, function call/response and tool declaration is bounded by its UTF-8 length
(:func:`aegis.core.text_tokens_upper_bound`); inline media by its base64 length (Gemini bills
258 tokens per image tile, 32 per second of audio, 263 per second of video, 258 per PDF page:
each far fewer than the bytes that encode them), with a floor of :data:`MEDIA_PART_MIN_TOKENS`
per part. A ``fileData`` URI is bounded by the model's context window, and so is the total,
since Gemini rejects longer prompts. Input the request makes the model read without holding it
(``cachedContent``, search or code-execution results) marks the estimate unbounded
(:attr:`GenerateEstimate.input_is_bounded`): the Gate adds the policy's allowance for it.

Output: ``candidateCount`` * (``maxOutputTokens`` + thinking allowance). Thinking tokens are
billed as output and are not bounded by ``maxOutputTokens`` on every model, so a thinking
model's allowance is ``thinkingConfig.thinkingBudget`` when the request sets a positive one,
nothing when it sets ``0``. Otherwise, on the Gemini 2.5 models (whose thinking budget range is
published) the allowance is what the request itself sends, its ``maxOutputTokens`` (or the
output bound it is given), fitted to the model's budget range, and the limited request then
carries it as ``thinkingBudget``, so the provider is held to it; on other models (unset, ``-1``
for dynamic, or a ``thinkingLevel``) it is the model's maximum output, a conservative default.
Gemini may think a little past a budget, so a budget is reserved with a margin of
:data:`THINKING_OVERSHOOT_DIVISOR`. Every model is assumed to think except the families known
not to (:func:`is_thinking_model`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aegis.core import MESSAGE_OVERHEAD_TOKENS, REPLY_OVERHEAD_TOKENS, text_tokens_upper_bound

from ._fields import field, snake

__all__ = [
    "MEDIA_PART_MIN_TOKENS",
    "THINKING_OVERSHOOT_DIVISOR",
    "GenerateEstimate",
    "OutputLimits",
    "estimate_embed_content",
    "estimate_generate_content",
    "is_thinking_model",
    "output_limits",
    "with_output_limits",
]

MEDIA_PART_MIN_TOKENS: Final = 2_560
"""Floor for one inline media part: above Gemini 3's highest per-image resolution (2240)."""
UNBOUNDED_TOOLS: Final = frozenset(
    {"googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext", "fileSearch"}
)
"""Built-in tools whose results enter the prompt (``toolUsePromptTokenCount``) unseen."""
_NON_THINKING_PREFIXES: Final = ("gemini-1.", "gemini-2.0-", "gemma-", "learnlm-")
# The thinkingBudget each Gemini 2.5 model accepts (ai.google.dev thinking guide), longest
# prefix first so flash-lite is not read as flash.
_THINKING_BUDGET_RANGES: Final = (
    ("gemini-2.5-flash-lite", 512, 24_576),
    ("gemini-2.5-flash", 1, 24_576),
    ("gemini-2.5-pro", 128, 32_768),
)
THINKING_OVERSHOOT_DIVISOR: Final = 32
"""A thinking budget is reserved with 1/32 more: thinking has been seen to run past a budget
(10 clamped calls committed 0.8% over their reservations)."""


@dataclass(frozen=True, slots=True)
class GenerateEstimate:
    """Upper bounds for one ``generateContent`` request."""

    input_tokens: int
    """Prompt tokens, at most (cache hits counted at full price)."""
    max_output_tokens: int
    """``maxOutputTokens`` per candidate: the request's, else the model's maximum."""
    thinking_tokens: int
    """Thinking allowance per candidate, on top of ``max_output_tokens`` (its margin included)."""
    candidate_count: int = 1
    thinking_budget: int | None = None
    """The ``thinkingBudget`` the limited request must carry (the request set none, and the
    allowance was bounded by what it does send), or ``None``."""
    input_is_bounded: bool = True
    """``False`` when the model also reads input the body does not hold (``cachedContent``,
    search results): the Gate then adds the policy's allowance for it."""

    @property
    def output_tokens(self) -> int:
        """Output tokens (visible and thinking, all candidates) at most."""
        return self.candidate_count * (self.max_output_tokens + self.thinking_tokens)


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """What a request must carry so its output stays within a granted number of tokens."""

    max_output_tokens: int
    """``generationConfig.maxOutputTokens``."""
    thinking_budget: int | None
    """``generationConfig.thinkingConfig.thinkingBudget`` to set, or ``None`` to leave as is."""


def is_thinking_model(model: str) -> bool:
    """Whether ``model`` may think; unknown models are assumed to (the safe side)."""
    name = model.rsplit("/", 1)[-1]
    if "thinking" in name:
        return True
    return not name.startswith(_NON_THINKING_PREFIXES)


def _json_len(value: Any) -> int:
    return text_tokens_upper_bound(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _part_tokens(part: Any, context_window: int) -> int:
    if not isinstance(part, Mapping):
        return _json_len(part)
    text = part.get("text")
    if isinstance(text, str) and len(part) == 1:
        return text_tokens_upper_bound(text)
    inline = field(part, "inlineData")
    if isinstance(inline, Mapping):
        data = inline.get("data")
        return max(MEDIA_PART_MIN_TOKENS, len(data) if isinstance(data, str) else 0)
    if field(part, "fileData") is not None:
        return context_window
    return _json_len(part)


def _content_tokens(content: Any, context_window: int) -> int:
    total = MESSAGE_OVERHEAD_TOKENS
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if isinstance(parts, Sequence) and not isinstance(parts, str):
        for part in parts:
            total += _part_tokens(part, context_window)
    elif content is not None:
        total += _json_len(content)
    return total


def _with_margin(budget: int) -> int:
    return budget + -(-budget // THINKING_OVERSHOOT_DIVISOR)


def _budget_range(model: str) -> tuple[int, int] | None:
    name = model.rsplit("/", 1)[-1]
    for prefix, low, high in _THINKING_BUDGET_RANGES:
        if name.startswith(prefix):
            return low, high
    return None


def _thinking_allowance(
    model: str, config: Mapping[str, Any], model_max_output: int, max_output: int
) -> tuple[int, int | None]:
    """``(allowance, budget to send)``: see the module docstring."""
    thinking = field(config, "thinkingConfig")
    budget = field(thinking, "thinkingBudget") if isinstance(thinking, Mapping) else None
    if isinstance(budget, int) and not isinstance(budget, bool):
        if budget == 0:
            return 0, None
        if budget > 0:
            return _with_margin(budget), None
    level = field(thinking, "thinkingLevel") if isinstance(thinking, Mapping) else None
    limits = _budget_range(model)
    if budget is None and level is None and limits is not None:
        low, high = limits
        chosen = max(low, min(max_output, high))
        return _with_margin(chosen), chosen
    if is_thinking_model(model) or isinstance(thinking, Mapping):
        return model_max_output, None
    return 0, None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def estimate_generate_content(
    body: Mapping[str, Any],
    *,
    model: str,
    model_max_output_tokens: int,
    context_window: int,
) -> GenerateEstimate:
    """Worst case of a ``generateContent`` / ``streamGenerateContent`` request body.

    ``model_max_output_tokens`` and ``context_window`` are the model's limits (its
    :class:`~aegis.core.ModelPrice` fields); never raises on odd JSON, it bounds it.
    """
    window = context_window if context_window > 0 else 1 << 62
    total = REPLY_OVERHEAD_TOKENS
    bounded = True
    contents = body.get("contents")
    if isinstance(contents, Sequence) and not isinstance(contents, str):
        for content in contents:
            total += _content_tokens(content, window)
    system = field(body, "systemInstruction")
    if system is not None:
        total += _content_tokens(system, window)
    tools = body.get("tools")
    if tools:
        total += _json_len(tools)
        if isinstance(tools, Sequence) and any(
            isinstance(tool, Mapping)
            and any(field(tool, name) is not None for name in UNBOUNDED_TOOLS)
            for tool in tools
        ):
            bounded = False
    tool_config = field(body, "toolConfig")
    if tool_config is not None:
        total += _json_len(tool_config)
    if field(body, "cachedContent"):
        bounded = False
    config = field(body, "generationConfig")
    if not isinstance(config, Mapping):
        config = {}
    max_output = _positive_int(field(config, "maxOutputTokens")) or model_max_output_tokens
    thinking, budget = _thinking_allowance(model, config, model_max_output_tokens, max_output)
    return GenerateEstimate(
        input_tokens=min(total, window),
        max_output_tokens=max_output,
        thinking_tokens=thinking,
        candidate_count=_positive_int(field(config, "candidateCount")) or 1,
        input_is_bounded=bounded,
        thinking_budget=budget,
    )


def estimate_embed_content(body: Mapping[str, Any], *, context_window: int = 0) -> int:
    """Input tokens of an ``embedContent`` or ``batchEmbedContents`` body, at most.

    ``context_window`` (the model's input limit, 0 when unknown) caps each content: Gemini
    truncates or rejects longer ones.
    """
    requests = body.get("requests")
    items = requests if isinstance(requests, Sequence) and not isinstance(requests, str) else [body]
    window = context_window if context_window > 0 else 1 << 62
    total = 0
    for item in items:
        if not isinstance(item, Mapping):
            total += _json_len(item)
            continue
        tokens = _content_tokens(item.get("content"), window)
        title = item.get("title")
        if isinstance(title, str):
            tokens += text_tokens_upper_bound(title)
        total += min(tokens, window)
    return total


def output_limits(estimate: GenerateEstimate, granted_output_tokens: int) -> OutputLimits:
    """Limits that keep a request's output within ``granted_output_tokens`` (a permit's).

    When the grant covers the estimate, the request keeps its own limits. When it was clamped,
    each candidate gets an equal share, split between visible output and thinking in the
    estimate's proportions, and the thinking budget is set explicitly so that the total holds
    whether or not the model counts thinking inside ``maxOutputTokens``.
    """
    if granted_output_tokens >= estimate.output_tokens:
        return OutputLimits(estimate.max_output_tokens, estimate.thinking_budget)
    share = max(1, granted_output_tokens // estimate.candidate_count)
    if estimate.thinking_tokens == 0:
        return OutputLimits(share, None)
    whole = estimate.max_output_tokens + estimate.thinking_tokens
    thinking = min(share * estimate.thinking_tokens // whole, share - 1)
    # The budget sent leaves room for the overshoot margin inside the thinking share.
    budget = thinking * THINKING_OVERSHOOT_DIVISOR // (THINKING_OVERSHOOT_DIVISOR + 1)
    return OutputLimits(share - thinking, budget)


def with_output_limits(body: Mapping[str, Any], limits: OutputLimits) -> dict[str, Any]:
    """A copy of ``body`` carrying ``limits`` in ``generationConfig`` (``body`` is untouched).

    Setting a thinking budget removes any ``thinkingLevel``: Gemini rejects both together.
    Fields written are spelled lowerCamelCase, and a snake_case twin is removed (a field given
    under both spellings is an error to Gemini).
    """
    out = dict(body)
    raw = field(out, "generationConfig")
    out.pop(snake("generationConfig"), None)
    config = dict(raw) if isinstance(raw, Mapping) else {}
    config.pop(snake("maxOutputTokens"), None)
    config["maxOutputTokens"] = limits.max_output_tokens
    if limits.thinking_budget is not None:
        raw_thinking = field(config, "thinkingConfig")
        config.pop(snake("thinkingConfig"), None)
        thinking = dict(raw_thinking) if isinstance(raw_thinking, Mapping) else {}
        for name in ("thinkingLevel", "thinkingBudget"):
            thinking.pop(name, None)
            thinking.pop(snake(name), None)
        thinking["thinkingBudget"] = limits.thinking_budget
        config["thinkingConfig"] = thinking
    out["generationConfig"] = config
    return out

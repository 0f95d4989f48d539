"""Worst-case token counts of Gemini requests, read from their REST JSON (camelCase).

Input: every text, function call/response and tool declaration is bounded by its UTF-8 length
(:func:`aegis.core.text_tokens_upper_bound`); inline images, audio and documents by their
base64 length (Gemini bills 258 tokens per image tile, 32 per second of audio, 258 per PDF
page: each far fewer than the bytes that encode them), with a floor of
:data:`MEDIA_PART_MIN_TOKENS` per part. Inline video is billed per sampled frame, which bytes do
not bound: it is bounded by its clip length (``videoMetadata`` offsets) x fps x
:data:`VIDEO_FRAME_TOKENS`, else by the context window. A ``fileData`` URI is bounded by the
model's context window, and so is the total, since Gemini rejects longer prompts. Input the
request makes the model read without holding it (``cachedContent``, search or code-execution
results) marks the estimate unbounded (:attr:`GenerateEstimate.input_is_bounded`): the Gate
adds the policy's allowance for it.

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

Counts are read the way Gemini reads them (proto3 JSON: ``8``, ``"8"`` and ``8.0`` are all
eight candidates); a count that cannot be read so is refused (:class:`UnboundedRequest`),
never defaulted — a default would reserve one candidate where Gemini bills eight.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from aegis.core import MESSAGE_OVERHEAD_TOKENS, REPLY_OVERHEAD_TOKENS, text_tokens_upper_bound

from ._fields import field, proto_int, snake
from .errors import UnboundedRequest

__all__ = [
    "MAX_VIDEO_FPS",
    "MEDIA_PART_MIN_TOKENS",
    "THINKING_OVERSHOOT_DIVISOR",
    "VIDEO_AUDIO_TOKENS_PER_S",
    "VIDEO_FRAME_TOKENS",
    "GenerateEstimate",
    "OutputLimits",
    "estimate_embed_content",
    "estimate_generate_content",
    "is_thinking_model",
    "output_limits",
    "with_output_limits",
]

MAX_VIDEO_FPS: Final = 24
"""The highest ``videoMetadata.fps`` Gemini samples at."""
VIDEO_FRAME_TOKENS: Final = 258
"""Tokens Gemini bills per sampled video frame (default media resolution, the highest)."""
VIDEO_AUDIO_TOKENS_PER_S: Final = 32
"""Tokens Gemini bills per second of a video's audio."""
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
    candidate_count: int = 1
    """``generationConfig.candidateCount`` (written when the request sets one)."""


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
        mime = field(inline, "mimeType")
        if isinstance(mime, str) and mime.lower().startswith("video/"):
            return _video_tokens(part, context_window)
        data = inline.get("data")
        return max(MEDIA_PART_MIN_TOKENS, len(data) if isinstance(data, str) else 0)
    if field(part, "fileData") is not None:
        return context_window
    return _json_len(part)


def _video_tokens(part: Mapping[str, Any], context_window: int) -> int:
    """Inline video is billed per frame, not per byte: a few kilobytes of video sampled at
    24 fps bill far more tokens than they have bytes. With ``startOffset`` and ``endOffset``
    the clip's length is known, and it is bounded by frames x :data:`VIDEO_FRAME_TOKENS` plus
    its audio; otherwise only the context window bounds it."""
    meta = field(part, "videoMetadata")
    meta = meta if isinstance(meta, Mapping) else {}
    fps = _fps(field(meta, "fps"))
    start = _duration_s(field(meta, "startOffset"), "startOffset")
    end = _duration_s(field(meta, "endOffset"), "endOffset")
    if start is None or end is None:
        return context_window
    seconds = max(0, math.ceil(end - start))
    frames = math.ceil(seconds * fps) + 1
    return min(context_window, frames * VIDEO_FRAME_TOKENS + seconds * VIDEO_AUDIO_TOKENS_PER_S)


def _fps(value: Any) -> Decimal:
    if value is None:
        return Decimal(1)  # Gemini samples one frame a second by default
    number = _decimal(value)
    if number is None or not 0 < number <= MAX_VIDEO_FPS:
        raise UnboundedRequest(
            f"must be a number above 0 and at most {MAX_VIDEO_FPS}", param="videoMetadata.fps"
        )
    return number


def _duration_s(value: Any, name: str) -> Decimal | None:
    """A proto3 JSON ``Duration`` (``"12.5s"``) in seconds; ``None`` when absent."""
    if value is None:
        return None
    number = _decimal(value[:-1]) if isinstance(value, str) and value.endswith("s") else None
    if number is None or number < 0:
        raise UnboundedRequest('must be a duration such as "12.5s"', param=f"videoMetadata.{name}")
    return number


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number.adjusted() < 12 else None


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
    budget = None
    if isinstance(thinking, Mapping):
        budget = _count(thinking, "thinkingBudget", "generationConfig.thinkingConfig")
    if budget is not None:
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


def _count(obj: Mapping[str, Any], name: str, where: str) -> int | None:
    """A count as Gemini reads it; ``None`` when absent; refused when unreadable."""
    value = field(obj, name)
    if value is None:
        return None
    count = proto_int(value)
    if count is None:
        raise UnboundedRequest(
            f"must be an integer (a number or a string of one), got {value!r:.40}",
            param=f"{where}.{name}",
        )
    return count


def estimate_generate_content(
    body: Mapping[str, Any],
    *,
    model: str,
    model_max_output_tokens: int,
    context_window: int,
) -> GenerateEstimate:
    """Worst case of a ``generateContent`` / ``streamGenerateContent`` request body.

    ``model_max_output_tokens`` and ``context_window`` are the model's limits (its
    :class:`~aegis.core.ModelPrice` fields); odd JSON is bounded, except a count that
    multiplies the cost and cannot be read as Gemini reads it: :class:`UnboundedRequest`.
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
    max_output = _count(config, "maxOutputTokens", "generationConfig")
    # Unset or not positive: Gemini's own default, which the model's maximum bounds.
    max_output = max_output if max_output and max_output > 0 else model_max_output_tokens
    candidates = _count(config, "candidateCount", "generationConfig")
    thinking, budget = _thinking_allowance(model, config, model_max_output_tokens, max_output)
    return GenerateEstimate(
        input_tokens=min(total, window),
        max_output_tokens=max_output,
        thinking_tokens=thinking,
        candidate_count=max(1, candidates or 1),
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
    count = estimate.candidate_count
    if granted_output_tokens >= estimate.output_tokens:
        return OutputLimits(estimate.max_output_tokens, estimate.thinking_budget, count)
    share = max(1, granted_output_tokens // count)
    if estimate.thinking_tokens == 0:
        return OutputLimits(share, None, count)
    whole = estimate.max_output_tokens + estimate.thinking_tokens
    thinking = min(share * estimate.thinking_tokens // whole, share - 1)
    # The budget sent leaves room for the overshoot margin inside the thinking share.
    budget = thinking * THINKING_OVERSHOOT_DIVISOR // (THINKING_OVERSHOOT_DIVISOR + 1)
    return OutputLimits(share - thinking, budget, count)


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
    if field(config, "candidateCount") is not None:
        # Sent as the integer that was reserved for, whatever spelling the caller used.
        config.pop(snake("candidateCount"), None)
        config["candidateCount"] = limits.candidate_count
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

"""Worst-case token counts from an OpenAI request body, without a tokenizer.

Input is bounded from above by the UTF-8 length of every text the model reads (see
:func:`aegis.core.text_tokens_upper_bound`), plus per-message and reply overheads, plus the
JSON length of tool and response-format schemas (OpenAI renders them more compactly than JSON).
Media has no text to measure, so it is bounded by constants:

* an image costs at most :data:`IMAGE_TOKENS_UPPER_BOUND` tokens (``detail: "low"``:
  :data:`LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND`). The largest image bill among OpenAI's models is
  gpt-4o-mini's, which prices a high-detail image as 2,833 + 5,667 tokens per 512-px tile, up to
  8 tiles: 48,169 tokens (2,833 at low detail);
* audio costs at most one token per :data:`AUDIO_BASE64_CHARS_PER_TOKEN` characters of its
  base64 data (audio is about 10 tokens a second; even 8 kbit/s MP3 is 1,333 characters a second).

Some requests make the model read what the body does not hold: ``previous_response_id``,
``conversation``, stored prompts, file ids, web or file search results. Their input is marked
unbounded (:attr:`RequestEstimate.input_is_bounded`), and the caller bounds it by the model's
context window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aegis.adapters.openai.errors import InvalidRequestBody
from aegis.core import MESSAGE_OVERHEAD_TOKENS, REPLY_OVERHEAD_TOKENS, text_tokens_upper_bound

__all__ = [
    "AUDIO_BASE64_CHARS_PER_TOKEN",
    "IMAGE_TOKENS_UPPER_BOUND",
    "LEGACY_DEFAULT_MAX_TOKENS",
    "LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND",
    "MAX_CHOICES",
    "SCHEMA_OVERHEAD_TOKENS",
    "RequestEstimate",
    "estimate_chat_request",
    "estimate_completions_request",
    "estimate_embeddings_request",
    "estimate_responses_request",
]

IMAGE_TOKENS_UPPER_BOUND: Final = 49_152
LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND: Final = 3_072
AUDIO_BASE64_CHARS_PER_TOKEN: Final = 16
SCHEMA_OVERHEAD_TOKENS: Final = 16
"""Framing tokens around one rendered tool or response schema, with margin."""
MAX_COUNT: Final = 2**31 - 1
"""No token count or choice count the API accepts is larger (OpenAI's fields are int32)."""
MAX_CHOICES: Final = 128
"""OpenAI's limit on ``n``."""

_TEXT_PARTS: Final = frozenset({"text", "input_text", "output_text", "refusal"})
_IMAGE_PARTS: Final = frozenset({"image_url", "input_image"})
# Tools whose results the provider adds to the input unseen.
_LOCAL_TOOLS: Final = frozenset({"function", "custom"})


@dataclass(frozen=True, slots=True)
class RequestEstimate:
    """The worst case of one request, in tokens."""

    model: str
    input_tokens: int
    """Upper bound of the input the body holds."""
    max_output_tokens: int | None
    """The output limit per choice the request sets; ``None``: the model's maximum."""
    n: int = 1
    """Choices generated; each may use the whole output limit."""
    extra_output_tokens: int = 0
    """Output billed beyond the choices (rejected predicted-output tokens)."""
    input_is_bounded: bool = True
    """``False`` when the model also reads input the body does not hold."""
    stream: bool = False

    def output_tokens(self, model_max_output_tokens: int) -> int:
        """Worst-case billed output, with ``model_max_output_tokens`` when the body sets none."""
        per_choice = self.max_output_tokens
        if per_choice is None:
            per_choice = model_max_output_tokens
        return per_choice * self.n + self.extra_output_tokens


def _bound(text: object) -> int:
    return text_tokens_upper_bound(text) if isinstance(text, str) else 0


def _json_bound(value: object) -> int:
    # ensure_ascii escapes are at least as long as the UTF-8 bytes they stand for, so the
    # length of the ASCII dump bounds the UTF-8 length without encoding it.
    return len(json.dumps(value, separators=(",", ":")))


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestBody("'model' must be a non-empty string", param="model")
    return model


def _count(body: Mapping[str, Any], key: str, *, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequestBody(f"'{key}' must be an integer >= {minimum}", param=key)
    if value > MAX_COUNT:
        raise InvalidRequestBody(f"'{key}' must be at most {MAX_COUNT}", param=key)
    return value


def _image_tokens(part: Mapping[str, Any]) -> int:
    detail = part.get("detail")
    inner = part.get("image_url")
    if isinstance(inner, Mapping):
        detail = inner.get("detail", detail)
    return LOW_DETAIL_IMAGE_TOKENS_UPPER_BOUND if detail == "low" else IMAGE_TOKENS_UPPER_BOUND


class _Tally:
    """Running input bound of one request body."""

    __slots__ = ("bounded", "tokens")

    def __init__(self) -> None:
        self.tokens = 0
        self.bounded = True

    def content(self, content: object) -> None:
        if isinstance(content, str):
            self.tokens += text_tokens_upper_bound(content)
        elif isinstance(content, list):
            for part in content:
                self.part(part)
        elif content is not None:
            self.tokens += _json_bound(content)

    def part(self, part: object) -> None:
        if isinstance(part, str):
            self.tokens += text_tokens_upper_bound(part)
            return
        if not isinstance(part, Mapping):
            raise InvalidRequestBody("content parts must be objects", param="messages")
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            self.tokens += _bound(part.get("text", part.get("refusal")))
        elif kind in _IMAGE_PARTS:
            self.tokens += _image_tokens(part)
        elif kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, Mapping) else None
            size = len(data) if isinstance(data, str) else 0
            self.tokens += size // AUDIO_BASE64_CHARS_PER_TOKEN + 1
        else:
            # Files (read as text and page images) and future part types: not measurable.
            self.tokens += _json_bound(part)
            self.bounded = False

    def tools(self, tools: object, param: str) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise InvalidRequestBody(f"'{param}' must be an array", param=param)
        for tool in tools:
            if isinstance(tool, Mapping) and tool.get("type", "function") not in _LOCAL_TOOLS:
                self.bounded = False
            self.tokens += _json_bound(tool) + SCHEMA_OVERHEAD_TOKENS

    def schema(self, value: object) -> None:
        if isinstance(value, Mapping) and value.get("type") not in (None, "text"):
            self.tokens += _json_bound(value) + SCHEMA_OVERHEAD_TOKENS


def estimate_chat_request(body: Mapping[str, Any]) -> RequestEstimate:
    """Worst case of a ``POST /v1/chat/completions`` body.

    Raises :class:`InvalidRequestBody` when the body cannot be bounded (no model, messages not
    a list, a negative or non-integer limit, ``n`` outside 1..128).
    """
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestBody("'messages' must be a non-empty array", param="messages")
    tally = _Tally()
    tokens = REPLY_OVERHEAD_TOKENS
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequestBody(
                "each message must be an object with a string 'role'", param="messages"
            )
        tokens += MESSAGE_OVERHEAD_TOKENS
        for key, value in message.items():
            if key == "content":
                tally.content(value)
            elif key == "tool_calls" or key == "function_call":
                tally.tokens += _json_bound(value)
            elif key == "audio":
                # A reference to an earlier audio reply: its tokens are not in the body.
                tally.bounded = False
            elif isinstance(value, str):
                tally.tokens += text_tokens_upper_bound(value)
    tally.tools(body.get("tools"), "tools")
    tally.tools(body.get("functions"), "functions")
    tally.schema(body.get("response_format"))
    if body.get("web_search_options") is not None:
        tally.bounded = False
    extra_output = 0
    prediction = body.get("prediction")
    if isinstance(prediction, Mapping):
        predicted = _Tally()
        predicted.content(prediction.get("content"))
        extra_output = predicted.tokens
    limit = _count(body, "max_completion_tokens", minimum=0)
    legacy = _count(body, "max_tokens", minimum=0)
    if legacy is not None and (limit is None or legacy > limit):
        # When both are set the upstream honours one of them; the larger is the worst case.
        limit = legacy
    n = _count(body, "n", minimum=1) or 1
    if n > MAX_CHOICES:
        raise InvalidRequestBody(f"'n' must be at most {MAX_CHOICES}", param="n")
    return RequestEstimate(
        model=model,
        input_tokens=tokens + tally.tokens,
        max_output_tokens=limit,
        n=n,
        extra_output_tokens=extra_output,
        input_is_bounded=tally.bounded,
        stream=body.get("stream") is True,
    )


def _responses_item(tally: _Tally, item: object) -> None:
    if isinstance(item, str):
        tally.tokens += text_tokens_upper_bound(item)
        return
    if not isinstance(item, Mapping):
        raise InvalidRequestBody("each input item must be an object", param="input")
    kind = item.get("type", "message")
    if kind == "message":
        tally.content(item.get("content"))
    elif kind == "item_reference":
        tally.bounded = False
    else:
        # Function calls and their outputs, reasoning items (their encrypted content is longer
        # than the tokens it carries) and the rest: every string they hold, as JSON.
        tally.tokens += _json_bound(item)
        if kind not in ("function_call", "function_call_output", "reasoning"):
            tally.bounded = False


def estimate_responses_request(body: Mapping[str, Any]) -> RequestEstimate:
    """Worst case of a ``POST /v1/responses`` body (``max_output_tokens`` covers reasoning)."""
    model = _model(body)
    tally = _Tally()
    tokens = REPLY_OVERHEAD_TOKENS
    items = body.get("input")
    if isinstance(items, str):
        tokens += MESSAGE_OVERHEAD_TOKENS
        tally.tokens += text_tokens_upper_bound(items)
    elif isinstance(items, list):
        for item in items:
            tokens += MESSAGE_OVERHEAD_TOKENS
            _responses_item(tally, item)
    elif items is not None:
        raise InvalidRequestBody("'input' must be a string or an array", param="input")
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        tokens += MESSAGE_OVERHEAD_TOKENS + text_tokens_upper_bound(instructions)
    tally.tools(body.get("tools"), "tools")
    text = body.get("text")
    if isinstance(text, Mapping):
        tally.schema(text.get("format"))
    for hidden in ("previous_response_id", "conversation", "prompt"):
        if body.get(hidden) is not None:
            tally.bounded = False
    return RequestEstimate(
        model=model,
        input_tokens=tokens + tally.tokens,
        max_output_tokens=_count(body, "max_output_tokens", minimum=0),
        input_is_bounded=tally.bounded,
        stream=body.get("stream") is True,
    )


def estimate_embeddings_request(body: Mapping[str, Any]) -> RequestEstimate:
    """Worst case of a ``POST /v1/embeddings`` body: its input, no output."""
    model = _model(body)
    raw = body.get("input")
    tokens = 0
    if isinstance(raw, str):
        tokens = text_tokens_upper_bound(raw)
    elif isinstance(raw, list) and raw:
        for item in raw:
            if isinstance(item, str):
                tokens += text_tokens_upper_bound(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                tokens += 1
            elif isinstance(item, list):
                tokens += len(item)
            else:
                raise InvalidRequestBody("unsupported embeddings input item", param="input")
    else:
        raise InvalidRequestBody(
            "'input' must be a string or a non-empty array of strings or tokens", param="input"
        )
    return RequestEstimate(model=model, input_tokens=tokens, max_output_tokens=0)


LEGACY_DEFAULT_MAX_TOKENS: Final = 16
"""The legacy completions API's ``max_tokens`` when the body sets none."""


def estimate_completions_request(body: Mapping[str, Any]) -> RequestEstimate:
    """Worst case of a legacy ``POST /v1/completions`` body: its prompt (text, texts, or
    token arrays) and suffix; ``max_tokens`` (16 when absent, as the API defaults) for each of
    ``max(n, best_of)`` generated completions (``best_of`` are generated and billed, ``n``
    returned)."""
    model = _model(body)
    prompt = body.get("prompt", "")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list):
        raise InvalidRequestBody("'prompt' must be a string or an array", param="prompt")
    if prompts and all(isinstance(p, int) and not isinstance(p, bool) for p in prompts):
        prompts = [prompts]  # one prompt as token ids
    tokens = REPLY_OVERHEAD_TOKENS
    for item in prompts:
        if isinstance(item, str):
            tokens += text_tokens_upper_bound(item)
        elif isinstance(item, list) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in item
        ):
            tokens += len(item)
        else:
            raise InvalidRequestBody(
                "each prompt must be a string or an array of token ids", param="prompt"
            )
    tokens += _bound(body.get("suffix"))
    limit = _count(body, "max_tokens", minimum=0)
    n = _count(body, "n", minimum=1) or 1
    best_of = _count(body, "best_of", minimum=1) or 1
    generated = max(n, best_of) * max(len(prompts), 1)
    if generated > MAX_CHOICES:
        raise InvalidRequestBody(
            f"prompts x max(n, best_of) must be at most {MAX_CHOICES}", param="n"
        )
    return RequestEstimate(
        model=model,
        input_tokens=tokens,
        max_output_tokens=LEGACY_DEFAULT_MAX_TOKENS if limit is None else limit,
        n=generated,
        stream=body.get("stream") is True,
    )

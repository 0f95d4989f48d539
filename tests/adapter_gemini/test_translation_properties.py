"""Property tests: translation never crashes, keeps what it is given, and rejects cleanly."""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

from fakes.gemini_upstream import validate_generate_request
from hypothesis import HealthCheck, given, settings, strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aegis.adapters.gemini import (
    ChatStreamTranslator,
    GeminiChatRequest,
    ResponseTranslationError,
    SseParser,
    StreamUsage,
    TranslationError,
    WireError,
    chat_request_to_gemini,
    embeddings_request_to_gemini,
    estimate_embed_content,
    estimate_generate_content,
    gemini_response_to_chat,
    output_limits,
    with_output_limits,
)


def _translate(request: Any) -> GeminiChatRequest | TranslationError:
    """The translation, or the TranslationError it raised (any other exception propagates)."""
    try:
        return chat_request_to_gemini(request)
    except TranslationError as exc:
        return exc


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(max_size=40)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
b64 = st.binary(min_size=1, max_size=24).map(lambda b: __import__("base64").b64encode(b).decode())
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)

text_part = texts.map(lambda t: {"type": "text", "text": t})
image_part = st.tuples(st.sampled_from(["image/png", "image/jpeg", "image/webp"]), b64).map(
    lambda x: {"type": "image_url", "image_url": {"url": f"data:{x[0]};base64,{x[1]}"}}
)
audio_part = st.tuples(st.sampled_from(["wav", "mp3"]), b64).map(
    lambda x: {"type": "input_audio", "input_audio": {"format": x[0], "data": x[1]}}
)
user_content = texts | st.lists(text_part | image_part | audio_part, max_size=4)
system_content = texts | st.lists(text_part, max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid OpenAI message lists: any order of system, user, assistant and tool turns."""
    messages: list[dict[str, Any]] = []
    call_number = 0
    for kind in draw(
        st.lists(st.sampled_from(["system", "developer", "user", "assistant", "tools"]), max_size=8)
    ):
        if kind in ("system", "developer"):
            messages.append({"role": kind, "content": draw(system_content)})
        elif kind == "user":
            messages.append({"role": "user", "content": draw(user_content)})
        elif kind == "assistant":
            messages.append({"role": "assistant", "content": draw(st.none() | texts)})
        else:
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                call_number += 1
                args = draw(st.dictionaries(names, json_scalars, max_size=3))
                calls.append(
                    {
                        "id": f"call_{call_number}",
                        "type": "function",
                        "function": {"name": draw(names), "arguments": json.dumps(args)},
                    }
                )
            messages.append(
                {"role": "assistant", "content": draw(st.none() | texts), "tool_calls": calls}
            )
            for call in calls:
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": draw(texts)}
                )
    return messages


def _texts_of(messages: list[dict[str, Any]], roles: set[str]) -> list[str]:
    out = []
    for m in messages:
        if m["role"] not in roles:
            continue
        content = m.get("content")
        if isinstance(content, str):
            out += [content] if content else []
        elif isinstance(content, list):
            out += [p["text"] for p in content if p["type"] == "text" and p["text"]]
    return out


@SETTINGS
@given(conversations())
def test_valid_conversations_translate_faithfully(messages: list[dict[str, Any]]) -> None:
    translated = _translate({"model": "m", "messages": messages})
    if isinstance(translated, TranslationError):
        # Only a conversation with nothing but system messages or empty content is refused.
        assert translated.param == "messages"
        assert not _texts_of(messages, {"user", "assistant"})
        assert not any(m["role"] == "tool" for m in messages)
        return
    body = translated.body
    validate_generate_request(body)  # what the Gemini API would accept
    contents = body["contents"]
    roles = [c["role"] for c in contents]
    assert all(a != b for a, b in itertools.pairwise(roles))
    parts_by_role: dict[str, list[dict[str, Any]]] = {"user": [], "model": []}
    for c in contents:
        parts_by_role[c["role"]] += c["parts"]
    user_texts = [p["text"] for p in parts_by_role["user"] if "text" in p]
    assert user_texts == _texts_of(messages, {"user"})
    model_texts = [p["text"] for p in parts_by_role["model"] if "text" in p]
    assert model_texts == _texts_of(messages, {"assistant"})
    system = body.get("systemInstruction", {"parts": []})["parts"]
    assert [p["text"] for p in system] == _texts_of(messages, {"system", "developer"})
    calls = [p["functionCall"] for p in parts_by_role["model"] if "functionCall" in p]
    results = [p["functionResponse"] for p in parts_by_role["user"] if "functionResponse" in p]
    assert [c["name"] for c in calls] == [r["name"] for r in results]


CORRUPTIONS = ["not_object", "bad_role", "extra_key", "bad_content", "extra_top", "bad_tool_id"]


@SETTINGS
@given(conversations(), st.sampled_from(CORRUPTIONS), st.data())
def test_invalid_conversations_are_rejected_naming_the_field(
    messages: list[dict[str, Any]], corruption: str, data: st.DataObject
) -> None:
    request: dict[str, Any] = {"model": "m", "messages": messages}
    if corruption == "extra_top":
        request["best_of"] = 2
        expected = "best_of"
    else:
        messages.append({"role": "user", "content": "anchor"})
        i = data.draw(st.integers(0, len(messages) - 1))
        if corruption == "not_object":
            junk: Any = data.draw(st.integers() | st.text() | st.none() | st.lists(st.integers()))
            messages[i] = junk
            expected = f"messages[{i}]"
        elif corruption == "bad_role":
            messages[i]["role"] = data.draw(
                st.text().filter(
                    lambda r: (
                        r not in {"system", "developer", "user", "assistant", "tool", "function"}
                    )
                )
            )
            expected = f"messages[{i}].role"
        elif corruption == "extra_key":
            messages[i]["colour"] = "blue"
            expected = f"messages[{i}].colour"
        elif corruption == "bad_content":
            messages[i] = {
                "role": "user",
                "content": data.draw(
                    st.integers() | st.booleans() | st.dictionaries(st.text(), st.integers())
                ),
            }
            expected = f"messages[{i}].content"
        else:
            messages[i] = {"role": "tool", "tool_call_id": "call_unknown", "content": "x"}
            expected = f"messages[{i}].tool_call_id"
    result = _translate(request)
    assert isinstance(result, TranslationError), f"accepted a request with {corruption}"
    assert result.param.startswith(expected), (result.param, expected)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "model",
                "messages",
                "tools",
                "tool_choice",
                "stop",
                "n",
                "response_format",
                "stream_options",
                "temperature",
                "top_p",
                "max_tokens",
                "max_completion_tokens",
                "seed",
                "stream",
                "reasoning_effort",
                "parallel_tool_calls",
                "logprobs",
                "modalities",
                "presence_penalty",
            ]
        ),
        json_values,
    )
)
def test_any_json_translates_or_fails_with_translation_error(request: dict[str, Any]) -> None:
    result = _translate(request)
    if isinstance(result, TranslationError):
        assert result.param


@SETTINGS
@given(st.lists(json_values, max_size=5))
def test_any_message_list_translates_or_fails_with_translation_error(messages: list[Any]) -> None:
    result = _translate({"model": "m", "messages": messages})
    if isinstance(result, TranslationError):
        assert result.param.startswith("messages")


gemini_parts = st.lists(
    texts.map(lambda t: {"text": t})
    | st.tuples(names, st.dictionaries(names, json_scalars, max_size=3)).map(
        lambda x: {"functionCall": {"name": x[0], "args": x[1]}}
    ),
    min_size=1,
    max_size=5,
)
usage_meta = st.builds(
    lambda p, c, o, t: {
        "promptTokenCount": p,
        "cachedContentTokenCount": min(c, p),
        "candidatesTokenCount": o,
        "thoughtsTokenCount": t,
    },
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)


@SETTINGS
@given(gemini_parts, st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]), usage_meta)
def test_gemini_responses_become_valid_chat_completions(
    parts: list[dict[str, Any]], reason: str, usage: dict[str, int]
) -> None:
    response = {
        "candidates": [{"content": {"parts": parts}, "finishReason": reason}],
        "usageMetadata": usage,
    }
    completion = ChatCompletion.model_validate(gemini_response_to_chat(response, model="m"))
    message = completion.choices[0].message
    text = "".join(p["text"] for p in parts if "text" in p)
    calls = [p["functionCall"] for p in parts if "functionCall" in p]
    assert (message.content or "") == text
    got = [c.model_dump() for c in message.tool_calls or []]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in got] == [
        (c["name"], c["args"]) for c in calls
    ]
    assert completion.usage is not None
    assert (
        completion.usage.completion_tokens
        == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )


@SETTINGS
@given(st.lists(st.tuples(gemini_parts, st.none() | usage_meta), min_size=1, max_size=6))
def test_streams_become_valid_chunks_with_the_last_usage(
    chunks: list[tuple[list[dict[str, Any]], dict[str, int] | None]],
) -> None:
    translator = ChatStreamTranslator(model="m", include_usage=True)
    events = []
    for i, (parts, usage) in enumerate(chunks):
        candidate: dict[str, Any] = {"content": {"parts": parts}, "index": 0}
        if i == len(chunks) - 1:
            candidate["finishReason"] = "STOP"
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if usage is not None:
            chunk["usageMetadata"] = usage
        events += translator.feed(chunk)
    events += translator.finish()
    parsed = [ChatCompletionChunk.model_validate(e) for e in events]
    text = "".join(p.choices[0].delta.content or "" for p in parsed if p.choices)
    assert text == "".join(p["text"] for parts, _ in chunks for p in parts if "text" in p)
    reported = [u for _, u in chunks if u is not None]
    if reported:
        assert parsed[-1].choices == []
        assert parsed[-1].usage is not None
        assert parsed[-1].usage.prompt_tokens == reported[-1]["promptTokenCount"]
    else:
        assert all(p.choices for p in parsed)
    assert translator.is_finished


@SETTINGS
@given(
    st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=5), st.data()
)
def test_sse_parser_is_split_invariant(events: list[dict[str, Any]], data: st.DataObject) -> None:
    body = b"".join(
        b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\r\n\r\n" for e in events
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=6)))
    parser = SseParser()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        out += parser.feed(body[start:end])
    assert out == events


@SETTINGS
@given(st.lists(st.none() | usage_meta, max_size=8))
def test_stream_usage_is_the_last_report_never_a_sum(reports: list[dict[str, int] | None]) -> None:
    tracker = StreamUsage()
    for meta in reports:
        tracker.observe({} if meta is None else {"usageMetadata": meta})
    present = [m for m in reports if m is not None]
    if not present:
        assert tracker.reported is None
    else:
        assert tracker.reported is not None
        assert tracker.reported.input_tokens == present[-1]["promptTokenCount"]
        assert (
            tracker.reported.output_tokens
            == present[-1]["candidatesTokenCount"] + present[-1]["thoughtsTokenCount"]
        )


part_types = st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "video"])
junk_parts = st.lists(
    st.builds(
        lambda kind, extra: {"type": kind, **extra},
        part_types,
        st.dictionaries(
            st.sampled_from(["text", "image_url", "input_audio", "file", "refusal", "url"]),
            json_values
            | st.dictionaries(
                st.sampled_from(
                    ["url", "data", "format", "file_data", "file_id", "filename", "detail"]
                ),
                json_values,
                max_size=3,
            ),
            max_size=2,
        ),
    ),
    max_size=3,
)


@SETTINGS
@given(st.sampled_from(["user", "assistant", "system", "tool"]), junk_parts)
def test_junk_content_parts_fail_only_with_translation_error(role: str, parts: list[Any]) -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": role, "content": parts, **({"tool_call_id": "c"} if role == "tool" else {})},
    ]
    result = _translate({"model": "m", "messages": messages})
    if isinstance(result, TranslationError):
        assert result.param.startswith("messages[1]")


@SETTINGS
@given(
    st.dictionaries(st.sampled_from(["candidates", "usageMetadata", "promptFeedback"]), json_values)
)
def test_junk_gemini_responses_fail_only_with_typed_errors(response: dict[str, Any]) -> None:
    try:
        gemini_response_to_chat(response, model="m")
        ChatStreamTranslator(model="m", include_usage=True).feed(response)
    except (ResponseTranslationError, WireError):
        pass


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["model", "input", "dimensions", "encoding_format"]), json_values
    )
)
def test_junk_embedding_requests_fail_only_with_translation_error(request: dict[str, Any]) -> None:
    with contextlib.suppress(TranslationError):
        embeddings_request_to_gemini(request)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "contents",
                "systemInstruction",
                "tools",
                "toolConfig",
                "generationConfig",
                "cachedContent",
            ]
        ),
        json_values,
    ),
    st.integers(1, 10**6),
)
def test_estimates_and_limits_accept_any_json(body: dict[str, Any], granted: int) -> None:
    estimate = estimate_generate_content(
        body, model="gemini-2.5-flash", model_max_output_tokens=65_536, context_window=1_048_576
    )
    assert 0 <= estimate.input_tokens <= 1_048_576
    assert estimate.output_tokens >= 1
    limits = output_limits(estimate, granted)
    sent = with_output_limits(body, limits)
    assert sent["generationConfig"]["maxOutputTokens"] == limits.max_output_tokens
    budget = limits.thinking_budget
    per_candidate = limits.max_output_tokens + (
        estimate.thinking_tokens if budget is None else budget
    )
    assert estimate.candidate_count * per_candidate <= max(granted, estimate.output_tokens)
    assert estimate_embed_content(body) >= 0

"""The request rewrite: the permit's output limit and streamed usage, nothing else touched."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, strategies as st

from aegis.adapters.openai import (
    SEARCH_CALLS_RESERVED,
    rewrite_chat_request,
    rewrite_responses_request,
)

MSG = [{"role": "user", "content": "hi"}]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": MSG, **extra}


def test_a_body_without_a_limit_gets_one() -> None:
    body = chat()
    out = rewrite_chat_request(body, max_output_tokens=500)
    assert out.body == {**body, "max_completion_tokens": 500}
    assert out.changes == {"max_completion_tokens": 500}
    assert out.added_only
    assert body == chat()  # the caller's body is not mutated
    legacy = rewrite_chat_request(body, max_output_tokens=500, limit_field="max_tokens")
    assert legacy.body["max_tokens"] == 500
    assert "max_completion_tokens" not in legacy.body


def test_a_higher_limit_is_lowered_and_a_lower_one_kept() -> None:
    high = rewrite_chat_request(chat(max_tokens=1000), max_output_tokens=300)
    assert high.body["max_tokens"] == 300
    assert "max_completion_tokens" not in high.body
    assert not high.added_only
    body = chat(max_completion_tokens=100)
    low = rewrite_chat_request(body, max_output_tokens=300)
    assert low.body is body
    assert low.changes == {}
    both = rewrite_chat_request(
        chat(max_tokens=1000, max_completion_tokens=200), max_output_tokens=300
    )
    assert both.body["max_tokens"] == 300
    assert both.body["max_completion_tokens"] == 200


def test_streams_ask_for_usage_and_remember_whether_the_client_did() -> None:
    plain = rewrite_chat_request(chat(stream=True), max_output_tokens=10)
    assert plain.body["stream_options"] == {"include_usage": True}
    assert not plain.client_wants_usage
    kept = rewrite_chat_request(
        chat(stream=True, stream_options={"include_obfuscation": False}), max_output_tokens=10
    )
    assert kept.body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert not kept.client_wants_usage
    asked = rewrite_chat_request(
        chat(stream=True, stream_options={"include_usage": True}, max_tokens=5),
        max_output_tokens=10,
    )
    assert asked.client_wants_usage
    assert asked.changes == {}
    unstreamed = rewrite_chat_request(chat(max_tokens=5), max_output_tokens=10)
    assert "stream_options" not in unstreamed.body


def test_to_bytes_appends_new_keys_to_the_original_bytes() -> None:
    # Odd spacing and key order survive: only the new keys are serialized.
    original = b'{"model": "gpt-4o-mini",   "messages": [{"role":"user","content":"h\\u00e9"}]}\n'
    body = json.loads(original)
    out = rewrite_chat_request(body, max_output_tokens=42)
    sent = out.to_bytes(original)
    assert sent.startswith(original.rstrip()[:-1])
    assert json.loads(sent) == {**body, "max_completion_tokens": 42}


def test_to_bytes_reserializes_only_when_a_key_changes() -> None:
    original = b'{"model":"m","messages":[],"max_tokens":900}'
    body = json.loads(original)
    out = rewrite_chat_request(body, max_output_tokens=10)
    assert json.loads(out.to_bytes(original)) == {**body, "max_tokens": 10}
    unchanged = rewrite_chat_request({**body, "max_tokens": 5}, max_output_tokens=10)
    same = b'{"model":"m","messages":[],"max_tokens":5}'
    assert unchanged.to_bytes(same) is same
    assert json.loads(unchanged.to_bytes()) == {**body, "max_tokens": 5}


def test_responses_limit() -> None:
    body = {"model": "m", "input": "hi", "stream": True}
    out = rewrite_responses_request(body, max_output_tokens=64)
    assert out.body == {**body, "max_output_tokens": 64}
    assert out.client_wants_usage  # Responses streams always carry usage
    lower = rewrite_responses_request({**body, "max_output_tokens": 10}, max_output_tokens=64)
    assert lower.changes == {}
    higher = rewrite_responses_request({**body, "max_output_tokens": 100}, max_output_tokens=64)
    assert higher.body["max_output_tokens"] == 64


def test_a_limit_that_is_not_an_integer_is_replaced() -> None:
    out = rewrite_chat_request(chat(max_tokens="lots"), max_output_tokens=7)
    assert out.body["max_tokens"] == 7
    responses = rewrite_responses_request(
        {"model": "m", "max_output_tokens": 2.5}, max_output_tokens=7
    )
    assert responses.body["max_output_tokens"] == 7


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(
    extra=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    stream=st.booleans(),
    limit=st.integers(min_value=1, max_value=10_000),
    indent=st.sampled_from([None, 2]),
)
def test_to_bytes_always_encodes_the_rewritten_body(
    extra: dict[str, Any], stream: bool, limit: int, indent: int | None
) -> None:
    body = {**extra, "model": "m", "messages": MSG, "stream": stream}
    original = json.dumps(body, indent=indent).encode()
    out = rewrite_chat_request(body, max_output_tokens=limit)
    assert json.loads(out.to_bytes(original)) == out.body
    assert json.loads(out.to_bytes()) == out.body


def test_a_search_tool_without_max_tool_calls_is_sent_with_the_reserved_count() -> None:
    body = {"model": "o3", "input": "news", "tools": [{"type": "web_search"}]}
    sent = rewrite_responses_request(body, max_output_tokens=100).body
    assert sent["max_tool_calls"] == SEARCH_CALLS_RESERVED
    own = rewrite_responses_request({**body, "max_tool_calls": 2}, max_output_tokens=100).body
    assert own["max_tool_calls"] == 2
    plain = rewrite_responses_request({"model": "o3", "input": "x"}, max_output_tokens=100).body
    assert "max_tool_calls" not in plain

"""Bad and hostile requests: always a 4xx in OpenAI's shape naming the problem, never a 500,
never an upstream call, never a reservation left behind."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fakes.openai_upstream import FakeUpstream
from fakes.proxy_harness import KEY, Proxy, make_settings
from hypothesis import HealthCheck, given, settings, strategies as st

from aegis.proxy import GATE, Settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
AUTH = {"Authorization": f"Bearer {KEY}"}
MSGS = [{"role": "user", "content": "hi"}]


async def post(
    proxy: Proxy, path: str, data: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            proxy.url + path,
            data=io.BytesIO(data),
            headers={**AUTH, "Content-Type": "application/json", **(headers or {})},
        ) as response,
    ):
        text = await response.text()
    if response.content_type == "text/event-stream":
        return response.status, {"stream": text}
    return response.status, json.loads(text)


async def no_holds_left(proxy: Proxy) -> None:
    statement = await proxy.app[GATE].ledger.statement(tenant_id="acme")
    assert statement.holds == ()
    assert all(b.pending_nanos == 0 for b in statement.balances.values())


BAD_CHAT_BODIES: list[tuple[Any, str | None]] = [
    ({"messages": MSGS}, "model"),
    ({"model": 42, "messages": MSGS}, "model"),
    ({"model": "", "messages": MSGS}, "model"),
    ({"model": ["gpt-4o"], "messages": MSGS}, "model"),
    ({"model": "gpt-4o-mini"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": "hello"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": [42]}, "messages"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": -5}, "max_tokens"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 10**30}, "max_tokens"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 12.5}, "max_tokens"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": "100"}, "max_tokens"),
    (
        {"model": "gpt-4o-mini", "messages": MSGS, "max_completion_tokens": True},
        "max_completion_tokens",
    ),
    ({"model": "gpt-4o-mini", "messages": MSGS, "n": 0}, "n"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "n": "2"}, "n"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "n": 10**9}, "n"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "stream": "yes"}, "stream"),
    ({"model": "gpt-4o-mini", "messages": MSGS, "stream": 1}, "stream"),
]


@pytest.mark.parametrize(("body", "param"), BAD_CHAT_BODIES)
async def test_every_field_the_gate_reads_is_checked(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    body: Any,
    param: str | None,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    status, answer = await post(proxy, "/v1/chat/completions", json.dumps(body).encode())
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    assert openai_upstream.fake.requests == []
    await no_holds_left(proxy)


@pytest.mark.parametrize(
    ("data", "headers", "status"),
    [
        (b"\xff\xfe{not utf-8", {}, 400),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400),  # deep nesting
        (b'{"model": "gpt-4o-mini", "messages": []}' + b" " * (21 * 1024 * 1024), {}, 413),
        (b"model=gpt-4o-mini", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
        (b"", {}, 400),
    ],
    ids=["invalid-utf8", "deep-nesting", "huge-body", "form-encoded", "empty"],
)
async def test_malformed_requests_are_4xx(
    tmp_path: Path,
    openai_upstream: FakeUpstream,
    start_proxy: StartProxy,
    data: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    got, answer = await post(proxy, "/v1/chat/completions", data, headers)
    assert got == status
    assert answer["error"]["message"]
    assert openai_upstream.fake.requests == []
    await no_holds_left(proxy)


async def test_absurd_headers_are_refused_without_a_crash(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> None:
    proxy = await start_proxy(make_settings(tmp_path, openai_upstream))
    body = json.dumps({"model": "gpt-4o-mini", "messages": MSGS}).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            proxy.url + "/v1/chat/completions",
            data=body,
            headers={**AUTH, "x-request-id": "r" * 100_000},
        ) as response,
    ):
        assert 400 <= response.status < 500
    status, answer = await post(proxy, "/v1/chat/completions", body, {"x-request-id": "r" * 1000})
    assert (status, answer["error"]["param"]) == (400, "x-request-id")
    assert openai_upstream.fake.requests == []


@pytest.mark.parametrize(
    "model",
    [
        "../../etc/passwd",
        "gpt-4o*",
        "*",
        "gpt-4o-mini/../o3",
        "g" * 10_000,
        "gpt-4o-mini\x00",
        "%2e%2e%2fadmin",
    ],
)
async def test_hostile_model_names_are_denied_and_go_nowhere(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy, model: str
) -> None:
    proxy = await start_proxy(
        make_settings(tmp_path, openai_upstream, model={"allow_models": ["gpt-4o-mini"]})
    )
    body = json.dumps({"model": model, "messages": MSGS}).encode()
    status, answer = await post(proxy, "/v1/chat/completions", body)
    assert 400 <= status < 500
    assert answer["error"]["message"]
    assert openai_upstream.fake.requests == []
    await no_holds_left(proxy)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
chat_like = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["gpt-4o-mini", "o3", "nope"]) | json_values,
        "messages": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "role": st.sampled_from(["user", "system", "assistant", "tool", "x"])
                    | json_values,
                    "content": st.text(max_size=30) | json_values,
                },
            ),
            max_size=3,
        )
        | json_values,
        "max_tokens": st.integers(-10, 10**6) | json_values,
        "n": st.integers(-1, 200) | json_values,
        "stream": st.booleans() | json_values,
        "tools": json_values,
    },
)


@pytest.fixture
async def fuzz_proxy(
    tmp_path: Path, openai_upstream: FakeUpstream, start_proxy: StartProxy
) -> Proxy:
    """One proxy for every example of a fuzz test (fixtures are not re-run per example)."""
    return await start_proxy(make_settings(tmp_path, openai_upstream))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=chat_like)
async def test_fuzzed_bodies_never_500_and_never_leak_a_hold(
    fuzz_proxy: Proxy, body: dict[str, Any]
) -> None:
    status, answer = await post(fuzz_proxy, "/v1/chat/completions", json.dumps(body).encode())
    assert status < 500, answer
    if status >= 400:
        assert answer["error"]["message"]
    await no_holds_left(fuzz_proxy)

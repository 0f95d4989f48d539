"""Every endpoint against every way an upstream fails: the client gets a clean error in its
own API's shape (never a bare 500), each attempt leaves exactly one receipt, no hold is left,
the ledger's total is the receipts' total, and the trail verifies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import pytest
from conftest import RECEIPT_SECRET
from fakes.faulty_upstream import Fault, FaultyUpstream
from fakes.proxy_harness import KEY, Proxy, free_port
from multidict import CIMultiDict

from aegis.core import HmacSha256Signer, Keyring, parse_usd, verify_trail
from aegis.proxy import GATE, Settings, hash_key, parse_settings

StartProxy = Callable[[Settings], Awaitable[Proxy]]
REFUSED = "connection refused"
CLIENT_LEAVES = "client disconnects"
MESSAGES = [{"role": "user", "content": "hello there"}]
CONTENTS = [{"role": "user", "parts": [{"text": "hello there"}]}]
CLAUDE = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": MESSAGES}


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    body: dict[str, Any]
    api: Literal["openai", "google", "anthropic"]
    stream: bool = False


def chat_served_by(name: str, model: str) -> list[Endpoint]:
    """OpenAI chat, JSON and SSE, for a model another provider serves through translation."""
    body = {"model": model, "messages": MESSAGES}
    return [
        Endpoint(f"chat served by {name}", "/v1/chat/completions", body, "openai"),
        Endpoint(
            f"chat SSE served by {name}",
            "/v1/chat/completions",
            {**body, "stream": True},
            "openai",
            stream=True,
        ),
    ]


ENDPOINTS = [
    Endpoint(
        "chat", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}, "openai"
    ),
    Endpoint(
        "chat SSE",
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        "openai",
        stream=True,
    ),
    Endpoint("responses", "/v1/responses", {"model": "gpt-4o-mini", "input": "hello"}, "openai"),
    Endpoint(
        "responses SSE",
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "hello", "stream": True},
        "openai",
        stream=True,
    ),
    Endpoint(
        "embeddings",
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "hello"},
        "openai",
    ),
    Endpoint(
        "gemini generate",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": CONTENTS},
        "google",
    ),
    Endpoint(
        "gemini stream",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": CONTENTS},
        "google",
        stream=True,
    ),
    Endpoint(
        "gemini embed",
        "/v1beta/models/gemini-embedding-001:embedContent",
        {"content": {"parts": [{"text": "hello"}]}},
        "google",
    ),
    *chat_served_by("gemini", "gemini-2.5-flash"),
    Endpoint("messages", "/v1/messages", CLAUDE, "anthropic"),
    Endpoint("messages SSE", "/v1/messages", {**CLAUDE, "stream": True}, "anthropic", stream=True),
    Endpoint(
        "count_tokens",
        "/v1/messages/count_tokens",
        {"model": "claude-haiku-4-5", "messages": MESSAGES},
        "anthropic",
    ),
    *chat_served_by("claude", "claude-haiku-4-5"),
]
_STREAM_ONLY = {Fault.SSE_CUT, Fault.SSE_GARBAGE}
CASES = [
    pytest.param(endpoint, fault, id=f"{endpoint.name}: {getattr(fault, 'value', fault)}")
    for endpoint in ENDPOINTS
    for fault in [*Fault, REFUSED, CLIENT_LEAVES]
    if fault is not Fault.STALL and (endpoint.stream or fault not in _STREAM_ONLY)
]


def settings_for(tmp_path: Path, base_url: str) -> Settings:
    return parse_settings(
        {
            "server": {"read_timeout_s": 0.5},
            "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.db")},
            "receipts": {"sink": "file", "path": str(tmp_path / "receipts")},
            "providers": {
                "openai": {"type": "openai", "base_url": base_url, "api_key_env": "FAKE_KEY"},
                "gemini": {"type": "gemini", "base_url": base_url, "api_key_env": "FAKE_KEY"},
                "anthropic": {
                    "type": "anthropic",
                    "base_url": base_url,
                    "api_key_env": "FAKE_KEY",
                },
            },
            "tenants": {
                "acme": {
                    "api_keys": [hash_key(KEY)],
                    "budgets": {"per_window": [{"window": "month", "limit_usd": "100"}]},
                }
            },
        }
    )


def trail_receipts(directory: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(directory.glob("*.jsonl")):
        if not path.name.endswith(".checkpoints.jsonl"):
            found += [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in found if "seq" in r and r.get("capability") != "trail:recovered"]


def assert_error_shape(api: str, body: Any) -> None:
    """An error in the caller's API: OpenAI's {message, type, ...}, google.rpc's, or
    Anthropic's {"type": "error", "error": {type, message}}."""
    assert isinstance(body, dict), body
    error = body["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["message"] != "internal error"
    if api == "google":
        assert isinstance(error["code"], int)
        assert isinstance(error["status"], str)
    elif api == "anthropic":
        assert body["type"] == "error"
        assert isinstance(error["type"], str)
    else:
        assert "type" in error
        assert "code" in error


def last_event(text: str) -> Any:
    events = [block for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    data = [line[6:] for line in events[-1].splitlines() if line.startswith("data: ")]
    return json.loads("\n".join(data))


async def call(
    endpoint: Endpoint, proxy: Proxy, request_id: str, fault: Fault | str
) -> tuple[int, CIMultiDict[str], bytes] | None:
    headers = {"Authorization": f"Bearer {KEY}", "x-request-id": request_id}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        if fault == CLIENT_LEAVES:
            # Leave while the upstream still works on it (mid-stream for a stream).
            with pytest.raises(TimeoutError):
                async with http.post(
                    proxy.url + endpoint.path,
                    json=endpoint.body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=0.3),
                ) as response:
                    await response.read()
            return None
        async with http.post(proxy.url + endpoint.path, json=endpoint.body, headers=headers) as r:
            return r.status, CIMultiDict(r.headers), await r.read()


@pytest.mark.parametrize(("endpoint", "fault"), CASES)
async def test_an_upstream_fault_is_answered_cleanly_and_settled_once(
    tmp_path: Path, start_proxy: StartProxy, endpoint: Endpoint, fault: Fault | str
) -> None:
    async with FaultyUpstream() as upstream:
        upstream.fault = fault if isinstance(fault, Fault) else Fault.STALL
        base = f"http://127.0.0.1:{free_port()}" if fault == REFUSED else upstream.url
        proxy = await start_proxy(settings_for(tmp_path, base))
        answer = await call(endpoint, proxy, "fault-1", fault)
        receipts_dir = tmp_path / "receipts"
        for _ in range(300):
            if trail_receipts(receipts_dir):
                break
            await asyncio.sleep(0.01)
        gate = proxy.app[GATE]
        statement = await gate.ledger.statement(tenant_id="acme")
        await proxy.close()

    receipts = trail_receipts(receipts_dir)
    assert [r["request_id"] for r in receipts] == ["fault-1"]  # one attempt, one receipt
    (receipt,) = receipts
    assert statement.holds == ()
    (month,) = [b for k, b in statement.balances.items() if k.startswith("month:")]
    assert month.pending_nanos == 0
    assert month.committed_nanos == parse_usd(receipt["actual_usd"])
    report = verify_trail(
        [receipts_dir], Keyring([HmacSha256Signer(key_id="aegis-1", secret=RECEIPT_SECRET)])
    )
    assert report.is_intact, report.problems

    reserved = parse_usd(receipt["reserved_usd"])
    charged = parse_usd(receipt["actual_usd"])
    if answer is None:  # the client left
        assert receipt["status"] == "cancelled"
        return
    status, headers, body = answer
    assert headers.get("x-request-id") == "fault-1"
    started_stream = status == 200
    if started_stream:
        # The failure came after the events began: the stream ends with an error event.
        assert endpoint.stream
        assert fault in (
            Fault.SSE_CUT,
            Fault.SSE_GARBAGE,
            Fault.RESET_AFTER_HEADERS,
            Fault.READ_TIMEOUT,
        )
        assert_error_shape(endpoint.api, last_event(body.decode()))
        assert receipt["status"] == "upstream_error"
        assert 0 < charged <= reserved  # billed what was counted, within the hold
        return
    assert_error_shape(endpoint.api, json.loads(body))
    assert receipt["status"] == "upstream_error"
    if fault in (Fault.SERVER_ERROR, Fault.RATE_LIMITED):
        assert status == (500 if fault is Fault.SERVER_ERROR else 429)
        if fault is Fault.RATE_LIMITED:
            assert headers["retry-after"] == "7"
        assert charged == 0  # the provider refused: nothing generated
    elif fault == REFUSED:
        assert status == 502
        assert charged == 0  # nothing reached the provider
    else:
        # Sent, and no usable answer: the provider may bill it, so the hold is charged.
        assert status == (504 if fault is Fault.READ_TIMEOUT else 502)
        assert charged == reserved

"""The fake Gemini API speaks the protocol the real one does, in-process and as a process."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from adapter_gemini._support import SDK_WARNING
from fakes.gemini_upstream import FakeGeminiProcess, FakeGeminiServer, Reply
from google import genai
from google.genai import errors as genai_errors, types

from aegis.adapters.gemini import SseParser

pytestmark = pytest.mark.filterwarnings(SDK_WARNING)

BODY = {"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]}


async def _post(url: str, body: Any, **headers: str) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"x-goog-api-key": "k", **headers}) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_generate_counts_prompt_tokens_and_reports_usage(upstream: FakeGeminiServer) -> None:
    status, _, raw = await _post(
        f"{upstream.url}/v1beta/models/gemini-2.5-flash:generateContent", BODY
    )
    assert status == 200
    data = json.loads(raw)
    assert data["candidates"][0]["content"]["parts"] == [{"text": "Hello from the fake Gemini."}]
    assert data["usageMetadata"] == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 5,
        "totalTokenCount": 8,
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"contents": []}, "contents is not specified"),
        ({**BODY, "generationConfig": {"maxTokens": 5}}, 'Unknown name "maxTokens"'),
        (
            {**BODY, "generationConfig": {"maxOutputTokens": 5, "max_output_tokens": 6}},
            "given twice",
        ),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
    ],
)
async def test_invalid_requests_get_google_400s(
    upstream: FakeGeminiServer, body: dict[str, Any], fragment: str
) -> None:
    status, _, raw = await _post(
        f"{upstream.url}/v1beta/models/gemini-2.5-flash:generateContent", body
    )
    error = json.loads(raw)["error"]
    assert (status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert fragment in error["message"]


async def test_missing_key_is_refused(upstream: FakeGeminiServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{upstream.url}/v1beta/models/m:generateContent", json=BODY) as resp,
    ):
        assert resp.status == 403
        assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"


async def test_stream_is_sse_with_running_totals_or_a_json_array(
    upstream: FakeGeminiServer,
) -> None:
    url = f"{upstream.url}/v1beta/models/m:streamGenerateContent"
    upstream.fake.script(Reply(text="a b c d", chunks=2, thoughts_tokens=3), Reply(chunks=2))
    status, kind, raw = await _post(f"{url}?alt=sse", BODY)
    assert (status, kind) == (200, "text/event-stream")
    chunks = SseParser().feed(raw)
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [2, 4]
    assert [c["usageMetadata"]["thoughtsTokenCount"] for c in chunks] == [3, 3]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[1]["candidates"][0]["finishReason"] == "STOP"
    status, kind, raw = await _post(url, BODY)
    assert kind.startswith("application/json")
    assert len(json.loads(raw)) == 2


async def test_subprocess_mode_is_scripted_over_http() -> None:
    with FakeGeminiProcess() as proc:
        await proc.script(Reply.error(503, "overloaded"), Reply(text="fine now"))
        client = genai.Client(
            api_key="test",
            http_options=types.HttpOptions(base_url=proc.url, api_version="v1beta"),
        )
        try:
            with pytest.raises(genai_errors.ServerError) as caught:
                await client.aio.models.generate_content(model="gemini-2.5-flash", contents="x")
            assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
            response = await client.aio.models.generate_content(
                model="gemini-2.5-flash", contents="x"
            )
            assert response.text == "fine now"
        finally:
            await client.aio.aclose()
        log = await proc.requests()
    assert [r["action"] for r in log] == ["generateContent", "generateContent"]
    assert all(r["api_key"] == "test" and not r["api_key_in_query"] for r in log)

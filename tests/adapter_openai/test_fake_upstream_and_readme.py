"""The fake upstream as a separate process (scripted over HTTP), and the README's example."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
from fakes.openai_upstream import FakeUpstream
from openai import AsyncOpenAI

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "packages" / "aegis-adapters-openai" / "README.md"


def env_with_tests_on_path() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "tests"), env.get("PYTHONPATH", "")) if p
    )
    return env


@pytest.fixture
async def upstream_process() -> AsyncIterator[str]:
    """``python -m fakes.openai_upstream --port 0``; yields its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.openai_upstream",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        env=env_with_tests_on_path(),
    )
    assert proc.stdout is not None
    line = (await proc.stdout.readline()).decode()
    match = re.match(r"listening on (http://\S+/v1)", line)
    assert match, line
    try:
        yield match.group(1)
    finally:
        proc.terminate()
        assert await proc.wait() == 0  # SIGTERM is a clean shutdown


async def test_the_fake_runs_as_a_process_and_is_scripted_over_http(
    upstream_process: str,
) -> None:
    control = upstream_process.removesuffix("/v1") + "/_fake"
    async with aiohttp.ClientSession() as http:
        actions = {
            "actions": [
                {"kind": "fault", "status": 400, "message": "bad", "type": "invalid_request_error"},
                {"kind": "reply", "text": "scripted reply", "prompt_tokens": 3},
            ]
        }
        async with http.post(control + "/enqueue", json=actions) as resp:
            assert (await resp.json()) == {"queued": 2}
        async with AsyncOpenAI(base_url=upstream_process, api_key="k", max_retries=0) as client:
            messages = [{"role": "user", "content": "hi"}]
            with pytest.raises(openai.BadRequestError):
                await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
            ok = await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
        assert ok.choices[0].message.content == "scripted reply"
        assert ok.usage is not None
        assert ok.usage.prompt_tokens == 3
        async with http.get(control + "/requests") as resp:
            log = await resp.json()
        assert [r["path"] for r in log] == ["/v1/chat/completions"] * 2
        assert log[0]["body"]["messages"] == messages
        async with http.post(control + "/reset") as resp:
            assert resp.status == 200
        async with http.get(control + "/requests") as resp:
            assert await resp.json() == []


async def test_the_fake_answers_unauthenticated_and_unknown_models_like_openai() -> None:
    async with FakeUpstream() as upstream:
        upstream.fake.api_key = "right"
        upstream.fake.known_models = {"gpt-4o-mini"}
        messages = [{"role": "user", "content": "hi"}]
        async with AsyncOpenAI(base_url=upstream.base_url, api_key="wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError) as caught:
                await bad.chat.completions.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
            assert caught.value.code == "invalid_api_key"
        async with AsyncOpenAI(base_url=upstream.base_url, api_key="right", max_retries=0) as ok:
            with pytest.raises(openai.NotFoundError) as missing:
                await ok.chat.completions.create(model="gpt-9", messages=messages)  # type: ignore[arg-type]
            assert missing.value.code == "model_not_found"
            models = await ok.models.list()
            assert [m.id for m in models.data] == ["gpt-4o-mini"]


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (example,) = [b for b in blocks if "chat_completions_via_gate(" in b]
    return str(example)


async def test_the_readme_example_runs_against_a_local_server() -> None:
    async with FakeUpstream() as upstream:
        upstream.fake.default.text = "Hello from the local server."
        env = env_with_tests_on_path()
        env["OPENAI_BASE_URL"] = upstream.base_url
        env.pop("OPENAI_API_KEY", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            readme_example(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert lines[0] == "Hello from the local server."
        assert lines[1].startswith("ok reported charged $0.")
        assert lines[2] == "Hello from the local server."
        assert lines[3].startswith("ok reported charged $0.")
        assert len(upstream.fake.requests) == 2
        assert upstream.fake.requests[1].body["stream_options"] == {"include_usage": True}

"""Client matrix: the openai Node SDK (Debian's ``node``, the npm package pinned in
``tests/clients/node/package.json``; ``make test`` installs both) against the proxy."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from clients.conftest import ACME, BROKE, Matrix

NODE_DIR = Path(__file__).parent / "node"


async def _cell(matrix: Matrix, cell: str, key: str = ACME) -> dict[str, Any]:
    # Never skipped: a machine without node or the package fails here, saying what to run.
    node = shutil.which("node")
    assert node is not None, "node is missing: run `make test` (it installs Debian's nodejs)"
    assert (NODE_DIR / "node_modules/openai/package.json").exists(), (
        "the openai npm package is missing: run `make test` (npm ci in tests/clients/node)"
    )
    process = await asyncio.create_subprocess_exec(
        node,
        "matrix.mjs",
        cell,
        cwd=NODE_DIR,
        env={"AEGIS_URL": matrix.url, "AEGIS_KEY": key, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def test_the_pinned_version_is_installed() -> None:
    pinned = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["openai"]
    installed = json.loads((NODE_DIR / "node_modules/openai/package.json").read_text())
    assert installed["version"] == pinned


async def test_chat(matrix: Matrix) -> None:
    result = await _cell(matrix, "chat")
    assert result["text"]
    assert result["requestId"] == matrix.seen.answers[-1].headers["x-request-id"]
    assert result["receiptId"]
    matrix.seen.assert_ids()


async def test_stream(matrix: Matrix) -> None:
    assert (await _cell(matrix, "stream"))["text"].startswith("Hello!")
    matrix.seen.assert_ids()


async def test_responses_and_reading_one_back(matrix: Matrix) -> None:
    result = await _cell(matrix, "responses")
    assert result["text"]
    assert result["same"] is True


async def test_embeddings(matrix: Matrix) -> None:
    assert (await _cell(matrix, "embeddings"))["count"] == 2


async def test_model_retrieve(matrix: Matrix) -> None:
    assert (await _cell(matrix, "models"))["id"] == "gpt-4o-mini"


async def test_budget_stop_is_one_request(matrix: Matrix) -> None:
    result = await _cell(matrix, "budget", BROKE)
    assert (result["error"], result["status"], result["type"]) == (
        "RateLimitError",
        429,
        "budget_exceeded",
    )
    assert "budget stop" in result["message"]
    assert len(matrix.seen.answers) == 1  # the SDK's 2 default retries not used
    assert result["requestId"] == matrix.seen.answers[-1].headers["x-request-id"]
    matrix.seen.assert_ids()

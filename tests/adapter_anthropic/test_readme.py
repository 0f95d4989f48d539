"""The package README's example runs against the local fake, as the README says it does."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from fakes.anthropic_upstream import FakeAnthropicServer, Reply

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "packages" / "aegis-adapters-anthropic" / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (example,) = blocks
    return str(example)


def test_the_readme_names_the_commands_that_run_it() -> None:
    text = README.read_text()
    assert "PYTHONPATH=tests uv run python -m fakes.anthropic_upstream --port 8001" in text
    assert '"http://127.0.0.1:8001"' in readme_example()


async def test_the_readme_example_runs_against_a_local_server() -> None:
    async with FakeAnthropicServer() as upstream:
        upstream.fake.default = Reply(text="Hello from the local server.", cache_write_5m_tokens=4)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT / "tests")
        env["ANTHROPIC_BASE_URL"] = upstream.url
        env.pop("ANTHROPIC_API_KEY", None)
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
        assert re.fullmatch(r"ok reported charged \$0\.\d+ of \$0\.\d+ reserved", lines[1])
        assert lines[2] == "Hello from the local server."
        assert re.fullmatch(r"ok reported charged \$0\.\d+", lines[3])
        first, second = (r.body for r in upstream.fake.requests)
        assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert second["stream"] is True

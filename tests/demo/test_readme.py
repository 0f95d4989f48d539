"""Every code block of the top-level README, run or mirrored one to one.

Blocks are marked ``<!-- readme-test: NAME -->``. Python and shell blocks run as written,
with only what a reader would fill in themselves: the key ``keys create`` printed, and
``localhost:8787`` pointing at the proxy this test started (on a free port, in front of the
local fakes of OpenAI, Gemini and Anthropic instead of the real APIs).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
from fakes.anthropic_upstream import FakeAnthropicServer
from fakes.gemini_upstream import FakeGeminiServer
from fakes.openai_upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent
MARKED = re.compile(r"<!-- readme-test: (\S+) -->\n```(\w+)\n(.*?)^```", re.S | re.M)
BLOCKS: dict[str, tuple[str, str]] = {
    name: (lang, body) for name, lang, body in MARKED.findall(README)
}
EXERCISED = {
    "architecture",
    "make",
    "quickstart-keys",
    "quickstart-config",
    "quickstart-serve",
    "curl",
    "openai-sdk",
    "genai-sdk",
    "anthropic-sdk",
    "core",
    # Run by tests/packaging/test_install.py, in fresh virtual environments.
    "install-wheels",
    "install-index",
    # `make install`: what `make test` itself runs first; see the make test below.
    "install-checkout",
}


def block(name: str) -> str:
    return BLOCKS[name][1]


def test_every_code_block_is_marked_and_exercised() -> None:
    fences = re.findall(r"^```\w*$", README, re.M)
    assert len(fences) == 2 * len(BLOCKS), "an unmarked code block in README.md"
    assert len(BLOCKS) == len(MARKED.findall(README)), "a marker used twice"
    assert set(BLOCKS) == EXERCISED


def test_the_architecture_picture_names_real_parts() -> None:
    picture = block("architecture")
    for package in re.findall(r"aegis-[a-z-]+[a-z]", picture):
        if package != "aegis-receipts":
            assert (ROOT / "packages" / package / "pyproject.toml").exists(), package
    core = tomllib.loads((ROOT / "packages/aegis-core/pyproject.toml").read_text())
    assert "aegis-receipts" in core["project"]["scripts"]
    proxy_readme = (ROOT / "packages/aegis-proxy/README.md").read_text()
    assert "`POST /v1/chat/completions`" in proxy_readme
    assert "`POST /v1beta/models/{model}:generateContent`" in proxy_readme
    assert "`POST /v1/messages`" in proxy_readme
    assert (ROOT / "packages/aegis-core/src/aegis/core/redis_ledger.py").exists()
    assert (ROOT / "packages/aegis-core/src/aegis/core/sqlite_ledger.py").exists()


def dry_run(target: str) -> str:
    # As a newcomer types it: under `make test` the parent's flags and command-line variables
    # (PYTEST_ARGS=...) would otherwise reach this make through the environment.
    skip = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "PYTEST_ARGS")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    return subprocess.run(
        ["make", "-n", "--no-print-directory", target],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_the_two_make_commands_do_what_the_readme_says() -> None:
    commands = [line.split("#")[0].strip() for line in block("make").splitlines()]
    assert commands == ["make demo", "make test"]
    demo = dry_run("demo")
    assert "sync --frozen --all-packages --all-groups" in demo  # sets everything up
    assert demo.strip().splitlines()[-1].endswith("run python -m demo")
    test = dry_run("test")
    assert "sync --frozen --all-packages --all-groups" in test
    assert test.strip().splitlines()[-1].endswith("run pytest")
    # The other targets the README names.
    assert "run ruff check" in dry_run("lint")
    assert "run mypy" in dry_run("lint")
    assert dry_run("bench").strip().splitlines()[-1].endswith("run python -m bench")
    assert block("install-checkout").split("#")[0].strip() == "make install"
    assert (
        dry_run("install")
        .strip()
        .splitlines()[-1]
        .endswith("sync --frozen --all-packages --all-groups")
    )
    # The Installing section's build line: what tests/packaging runs, in a copy of the checkout.
    assert block("install-wheels").splitlines()[0].split("#")[0].strip() == "make build"
    build = dry_run("build")
    assert "build --package $p --out-dir dist" in build
    assert "aegis-runtime-proxy" in build  # tests/packaging checks the list is every package


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(cmd: str | list[str], cwd: Path, env: dict[str, str]) -> str:
    if isinstance(cmd, str):
        process = await asyncio.create_subprocess_shell(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    else:
        process = await asyncio.create_subprocess_exec(
            *cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    out, err = await process.communicate()
    assert process.returncode == 0, f"{cmd}: {err.decode()}"
    return out.decode()


async def test_the_quick_start_curl_and_the_sdks(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AEGIS_CONFIG", None)

    # Step 1. tests/packaging/test_install.py runs `pip install aegis-runtime-proxy` in a fresh
    # environment (and `aegis-proxy --help` there); here the workspace has it installed.
    keys = block("quickstart-keys").strip().splitlines()
    assert keys == ["pip install aegis-runtime-proxy", "aegis-proxy keys create --tenant my-team"]
    printed = await run(keys[1], tmp_path, env)
    key = re.search(r"^\s+(\S+)$", printed, re.M)
    line = re.search(r'api_keys = \["(sha256:[0-9a-f]{64})"\]', printed)
    assert key, printed
    assert line, printed
    assert "[tenants.my-team]" in printed

    async with (
        FakeUpstream() as openai_up,
        FakeGeminiServer() as gemini_up,
        FakeAnthropicServer() as anthropic_up,
    ):
        # Step 2. The file as written, with the printed hash; the providers point at the fakes
        # and the server at a free port (the only lines added).
        port = free_port()
        config = block("quickstart-config")
        assert config.count('"sha256:…"') == 1
        config = config.replace('"sha256:…"', f'"{line[1]}"')
        config = config.replace(
            'type = "openai"', f'type = "openai"\nbase_url = "{openai_up.base_url}"'
        )
        config = config.replace('type = "gemini"', f'type = "gemini"\nbase_url = "{gemini_up.url}"')
        config = config.replace(
            'type = "anthropic"', f'type = "anthropic"\nbase_url = "{anthropic_up.url}"'
        )
        (tmp_path / "aegis.toml").write_text(f"[server]\nport = {port}\n\n{config}")
        checked = await run("aegis-proxy check-config aegis.toml", tmp_path, env)
        assert "ok (3 providers, 1 tenants)" in checked

        # Step 3. The export line and the serve command, as written.
        serve = block("quickstart-serve").strip().splitlines()
        assert serve[0].startswith("export OPENAI_API_KEY=sk-")
        assert "GEMINI_API_KEY=" in serve[0]
        assert "ANTHROPIC_API_KEY=sk-ant-" in serve[0]
        assert serve[1] == "aegis-proxy serve --config aegis.toml"
        script = "\n".join(["set -e", serve[0], f"exec {serve[1]}"])
        log = (tmp_path / "proxy.log").open("wb")
        proxy = subprocess.Popen(
            ["bash", "-c", script], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as http:
                for _ in range(300):
                    assert proxy.poll() is None, (tmp_path / "proxy.log").read_text()
                    try:
                        async with http.get(url + "/readyz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
            call_env = {**env, "AEGIS_KEY": key[1]}

            curl = block("curl").replace("localhost:8787", f"127.0.0.1:{port}")
            completion = json.loads(await run(curl, tmp_path, call_env))
            assert completion["object"] == "chat.completion"
            assert completion["choices"][0]["message"]["content"]
            sent = openai_up.fake.requests[-1]
            assert sent.headers["Authorization"] == "Bearer sk-..."  # the export line's key

            for name in ("openai-sdk", "genai-sdk", "anthropic-sdk"):
                code = block(name).replace("localhost:8787", f"127.0.0.1:{port}")
                program = tmp_path / f"{name}.py"
                program.write_text(f"import os\nAEGIS_KEY = os.environ['AEGIS_KEY']\n{code}")
                printed_reply = await run([sys.executable, str(program)], tmp_path, call_env)
                assert printed_reply.strip(), name
            assert len(openai_up.fake.requests) == 2
            assert len(gemini_up.fake.requests) == 1

            # The quickstart policy serves the largest models it allows too: gemini-2.5-pro's
            # worst case at its maximum (65,536 output + thinking tokens) is above the $0.50
            # run budget; with the policy's default output bound it goes out, bounded.
            pro = block("genai-sdk").replace("localhost:8787", f"127.0.0.1:{port}")
            pro = pro.replace('model="gemini-2.5-flash"', 'model="gemini-2.5-pro"')
            program = tmp_path / "genai-pro.py"
            program.write_text(f"import os\nAEGIS_KEY = os.environ['AEGIS_KEY']\n{pro}")
            assert (await run([sys.executable, str(program)], tmp_path, call_env)).strip()
            sent_config = gemini_up.fake.requests[-1].body["generationConfig"]
            assert 0 < sent_config["maxOutputTokens"] <= 8192
            (claude_call,) = anthropic_up.fake.requests
            assert claude_call.headers["x-api-key"] == "sk-ant-..."  # the export line's key
        finally:
            proxy.terminate()
            proxy.wait(timeout=30)
            log.close()

    # The SDK calls (gemini-2.5-pro's too) and the curl call were governed: five receipts.
    trail = b"".join(p.read_bytes() for p in (tmp_path / ".aegis/receipts").glob("*.jsonl"))
    receipts = [json.loads(r) for r in trail.splitlines() if b'"receipt_id"' in r]
    assert [(r["tenant_id"], r["status"]) for r in receipts] == [("my-team", "ok")] * 5
    assert {r["run_id"] for r in receipts} == {"nightly-report-42", None}


def test_the_core_example_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    code = block("core")
    expected = re.search(r"print\(.*\)\s+# (.+)$", code, re.M)
    assert expected
    program = tmp_path / "core_example.py"
    program.write_text(code)
    out = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env={**os.environ, "AEGIS_RECEIPT_SECRET": "s" * 32},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == expected[1]
    assert (tmp_path / ".aegis/ledger.db").exists()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_resolves() -> None:
    for doc in (ROOT / "README.md", ROOT / "demo/README.md"):
        links = re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
        assert links
        for link in links:
            if link.startswith(("http://", "https://")):
                continue
            path, _, anchor = link.partition("#")
            target = (doc.parent / path).resolve() if path else doc
            assert target.exists(), f"{doc.name}: {link}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
                assert anchor in {slug(h) for h in headings}, f"{doc.name}: {link}"


def test_the_package_table_says_what_each_package_pulls_in() -> None:
    # Distribution, import, folder side by side; "Pulls in" is each pyproject's requirements.
    rows = re.findall(
        r"^\| `(aegis-runtime-[a-z-]+)` \| `([\w.]+)` \| (\S+) \| ([^|]+) \| ([^|]*) \|$",
        README,
        re.M,
    )
    members = {
        tomllib.loads(p.read_text())["project"]["name"]: p.parent
        for p in sorted(ROOT.glob("packages/*/pyproject.toml"))
    }
    listed = [r[0] for r in rows]
    assert listed[: len(members)] == [
        "aegis-runtime-core",
        "aegis-runtime-adapters-openai",
        "aegis-runtime-adapters-gemini",
        "aegis-runtime-adapters-anthropic",
        "aegis-runtime-proxy",
    ]
    assert len(set(listed)) == len(listed)
    for name, module, folder, holds, pulls in rows:
        if name not in members:
            # A reserved name: its package is not in this tree (yet). When it lands, its
            # folder exists and the row must become a real one.
            assert holds.startswith("reserved"), name
            assert folder.startswith("`packages/aegis-"), name
            assert not (ROOT / folder.strip("`")).exists(), f"{name}: {folder} exists now"
            continue
        here = members[name]
        project = tomllib.loads((here / "pyproject.toml").read_text())["project"]
        assert folder == f"[`packages/{here.name}`](packages/{here.name}/README.md)", name
        assert (here / "src" / module.replace(".", "/") / "__init__.py").exists(), name
        required, _, extras = pulls.partition("(extra")
        declared = {re.split(r"[<>=!~\[ ;]", d)[0] for d in project["dependencies"]}
        assert set(re.findall(r"`([^`]+)`", required)) == declared, name
        assert set(re.findall(r"`([^`]+)`", extras)) == set(
            project.get("optional-dependencies", {})
        )
    assert set(members) <= set(listed), "a package missing from the README's table"

"""The distributions stay separable: namespace intact, core stdlib-only, wheels install alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import aegis

ROOT = Path(__file__).resolve().parents[2]


def test_aegis_is_a_namespace_shared_by_every_distribution() -> None:
    assert type(aegis.__path__).__name__ == "_NamespacePath"
    assert not list(ROOT.glob("packages/*/src/aegis/__init__.py"))
    assert not list(ROOT.glob("packages/*/src/aegis/adapters/__init__.py"))


def test_core_declares_no_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "packages/aegis-core/pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []


def test_core_imports_nothing_outside_the_stdlib_and_itself() -> None:
    allowed_optional = {"cryptography", "redis"}  # behind extras, imported lazily
    stdlib = sys.stdlib_module_names
    for path in (ROOT / "packages/aegis-core/src/aegis/core").rglob("*.py"):
        for line in path.read_text().splitlines():
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from") and not line.startswith(" "):
                top = words[1].split(".")[0]
                assert (
                    top in stdlib or top in {"aegis", "__future__"} or (top in allowed_optional)
                ), f"{path.name}: {line.strip()}"


def test_the_core_wheel_installs_alone_and_works(tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv must be installed (make install does it)"
    subprocess.run(
        [uv, "build", "--package", "aegis-core", "--wheel", "--out-dir", str(tmp_path / "dist")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("aegis_core-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", str(wheel)], check=True
    )
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.split()}
    assert installed - {"pip", "setuptools", "wheel"} == {"aegis-core"}
    script = (
        "import asyncio\n"
        "from aegis.core import *\n"
        "async def main():\n"
        "    gate = Gate(policy_provider=InMemoryPolicyProvider({'t': {}}), ledger=MemoryLedger(),"
        " pricing=default_pricing_table(), signer=HmacSha256Signer(key_id='k', secret='s'*32),"
        " sink=MemoryReceiptSink())\n"
        "    async with gate.call(tenant_id='t', request_id='r', provider='openai',"
        " model='gpt-4o-mini', input_tokens=10, max_output_tokens=10) as c:\n"
        "        c.record(Usage(input_tokens=10, output_tokens=5))\n"
        "    print(c.receipt.actual_usd)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "0.0000045"


def test_the_proxy_does_not_load_the_provider_sdks() -> None:
    # The proxy speaks the wire formats itself; the SDKs cost startup time and memory.
    script = (
        "import sys, aegis.proxy.app, aegis.adapters.openai, aegis.adapters.gemini\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'httpx'}),"
        " 'google.genai' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "False"]


def test_the_anthropic_wire_functions_do_not_load_the_sdk() -> None:
    # The proxy runs the wire functions on every request; the SDK loads only for governed calls.
    script = (
        "import sys, aegis.adapters.anthropic as a\n"
        "a.estimate_messages_request({'model': 'm', 'max_tokens': 1,"
        " 'messages': [{'role': 'user', 'content': 'hi'}]})\n"
        "print('anthropic' in sys.modules)\n"
        "a.messages_via_gate\n"
        "print('anthropic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]

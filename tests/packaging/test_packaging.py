"""The distributions stay separable: namespace intact, core stdlib-only, wheels install alone."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from wheels import Built, Venv, our_projects, requirement_name, wheel_metadata

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


def test_the_core_wheel_installs_alone_and_works(built: Built, tmp_path: Path) -> None:
    # No index at all: the core wheel needs nothing but itself.
    venv = Venv(tmp_path / "venv")
    wheel = str(built.wheels["aegis-runtime-core"])
    venv.run(str(venv.python), "-m", "pip", "install", "--quiet", "--no-index", wheel)
    assert venv.installed() == {"aegis-runtime-core"}
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
    assert venv.py(script).strip() == "0.0000045"


def test_the_proxy_does_not_load_the_provider_sdks() -> None:
    # The proxy speaks the wire formats itself; the SDKs cost startup time and memory.
    script = (
        "import sys, aegis.proxy.app, aegis.adapters.openai, aegis.adapters.gemini\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'openai', 'httpx'}),"
        " 'google.genai' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "False"]


def test_every_package_builds_a_wheel_and_an_sdist_with_its_metadata(built: Built) -> None:
    projects = our_projects()
    assert set(built.wheels) == set(projects)
    files = sorted(p.name for p in built.dist.iterdir() if p.suffix in (".whl", ".gz"))
    assert files == sorted(
        f"{n.replace('-', '_')}-0.1.0{suffix}"
        for n in projects
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    for name, wheel in built.wheels.items():
        meta = wheel_metadata(wheel)
        assert meta["Name"] == name
        assert meta["Version"] == "0.1.0"
        assert meta["License-Expression"] == "MIT"
        assert meta["Requires-Python"] == ">=3.11"
        assert meta["Summary"].startswith("Aegis ")
        assert meta["Author"]
        assert meta["Description-Content-Type"] == "text/markdown"
        assert str(meta.get_payload()).startswith(f"# {name}\n")  # the package README
        # No public repository exists yet: no URLs rather than made-up ones. Real ones may come
        # with the repository, and this line with them.
        assert not meta.get_all("Project-URL")
        assert not meta.get_all("Home-page")
        classifiers = meta.get_all("Classifier") or []
        assert "Programming Language :: Python :: 3.11" in classifiers
        assert "Typing :: Typed" in classifiers
        with zipfile.ZipFile(wheel) as z:
            names = z.namelist()
        # PEP 420: no distribution may own aegis/__init__.py or aegis/adapters/__init__.py.
        assert "aegis/__init__.py" not in names
        assert "aegis/adapters/__init__.py" not in names
        assert any(n.endswith("/py.typed") for n in names)


def test_our_packages_require_each_other_by_our_names_in_lockstep() -> None:
    projects = our_projects()
    (version,) = {p["version"] for p in projects.values()}  # one version for all
    major, minor = (int(v) for v in version.split(".")[:2])
    compatible = f">={major}.{minor},<{major}.{minor + 1}"
    for name, project in projects.items():
        assert name.startswith("aegis-runtime-"), name
        for requirement in project["dependencies"]:
            required = requirement_name(requirement)
            if required.startswith("aegis"):
                # Only our own names, each held to the release we ship with: no resolver can
                # take another project's "aegis-…" or a newer one of ours.
                assert required in projects, f"{name} requires {required}, not one of ours"
                assert requirement == f"{required}{compatible}", f"{name}: {requirement}"
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {requirement_name(r) for r in root["project"]["dependencies"]} == set(projects)
    assert set(root["tool"]["uv"]["sources"]) == set(projects)
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p for p in lock["package"]}
    for name in projects:
        assert locked[name]["version"] == version
        assert "editable" in locked[name]["source"], name  # from the workspace, not the index


def test_make_build_builds_every_distribution() -> None:
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^PACKAGES := (.+)$", makefile, re.M)
    assert listed
    assert sorted(listed[1].split()) == sorted(our_projects())


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

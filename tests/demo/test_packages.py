"""The five distributions build with ``uv build --all-packages`` and each installs alone, from
the built files, into its own fresh virtual environment, pulling in only what it declares.

Our wheels are only ever taken from the build output: PyPI already has an unrelated
``aegis-core`` (1.x), so every install is ``--no-index`` over two local folders, the build
output and a wheelhouse of the third-party requirements our wheels declare (downloaded once
from the package index). Whatever a wheel pulls in therefore comes from its metadata, and a
wrong dependency (say ``google-genai`` in the OpenAI adapter) would be installed and caught.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = (
    "aegis-core",
    "aegis-adapters-openai",
    "aegis-adapters-gemini",
    "aegis-runtime-adapters-anthropic",
    "aegis-proxy",
)
ADAPTERS = {
    "aegis-adapters-openai": ("openai", "aegis.adapters.openai"),
    "aegis-adapters-gemini": ("google-genai", "aegis.adapters.gemini"),
    "aegis-runtime-adapters-anthropic": ("anthropic", "aegis.adapters.anthropic"),
}

# Lists every installed distribution and, for the names given, the closure of what they
# require (markers evaluated, extras not followed): run inside the fresh environment.
_INSPECT = r"""
import json, re, sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement

def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()

installed = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
def closure(name, seen):
    dist = installed.get(norm(name))
    if dist is None or norm(name) in seen:
        return
    seen.add(norm(name))
    for raw in dist.requires or []:
        req = Requirement(raw)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            closure(req.name, seen)

out = {"installed": sorted(installed), "closures": {}}
for name in sys.argv[1:]:
    seen = set()
    closure(name, seen)
    out["closures"][name] = sorted(seen)
print(json.dumps(out))
"""


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode())


class Built:
    def __init__(self, dist: Path, wheelhouse: Path) -> None:
        self.dist = dist
        self.wheelhouse = wheelhouse

    def wheel(self, name: str) -> Path:
        return next(self.dist.glob(name.replace("-", "_") + "-*.whl"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv must be installed (make install does it)"
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv, "build", "--all-packages", "--out-dir", str(dist)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    built = Built(dist, tmp_path_factory.mktemp("wheelhouse"))
    third_party = set()
    for name in OURS:
        for req in wheel_metadata(built.wheel(name)).get_all("Requires-Dist") or []:
            if "extra ==" not in req and not req.startswith("aegis-"):
                third_party.add(req.split(";")[0].strip())
    # uv's environments have no pip: a throwaway venv does the download.
    tools = tmp_path_factory.mktemp("tools")
    subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
    subprocess.run(
        [str(tools / "bin" / "python"), "-m", "pip", "download", "--quiet",
         "--dest", str(built.wheelhouse), "--only-binary", ":all:", *sorted(third_party)],
        check=True,
    )  # fmt: skip
    return built


def test_every_package_builds_a_wheel_and_an_sdist_with_its_metadata(built: Built) -> None:
    files = sorted(p.name for p in built.dist.iterdir() if p.suffix in (".whl", ".gz"))
    assert files == sorted(
        f"{n.replace('-', '_')}-0.1.0{suffix}"
        for n in OURS
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    for name in OURS:
        meta = wheel_metadata(built.wheel(name))
        assert meta["Name"] == name
        assert meta["Version"] == "0.1.0"
        assert meta["License-Expression"] == "MIT"
        assert meta["Requires-Python"] == ">=3.11"
        assert meta["Summary"].startswith("Aegis ")
        assert meta["Author"]
        assert meta["Description-Content-Type"] == "text/markdown"
        assert str(meta.get_payload()).startswith(f"# {name}")  # the package README
        urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
        assert {"Homepage", "Repository", "Documentation", "Issues"} <= set(urls)
        classifiers = meta.get_all("Classifier") or []
        assert "Programming Language :: Python :: 3.11" in classifiers
        assert "Typing :: Typed" in classifiers
        with zipfile.ZipFile(built.wheel(name)) as z:
            names = z.namelist()
        # PEP 420: no distribution may own aegis/__init__.py or aegis/adapters/__init__.py.
        assert "aegis/__init__.py" not in names
        assert "aegis/adapters/__init__.py" not in names
        assert any(n.endswith("/py.typed") for n in names)


class Venv:
    def __init__(self, path: Path, built: Built) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        self.bin = path / "bin"
        self.python = self.bin / "python"
        self.built = built

    def install(self, name: str) -> None:
        subprocess.run(
            [str(self.python), "-m", "pip", "install", "--quiet", "--no-index",
             "--find-links", str(self.built.dist), "--find-links", str(self.built.wheelhouse),
             f"{name}==0.1.0"],
            check=True,
            # The machine's pip config may add find-links and constraints of its own: only the
            # two folders above may supply anything.
            env={**os.environ, "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": ""},
        )  # fmt: skip

    def inspect(self, *names: str) -> tuple[set[str], dict[str, set[str]]]:
        out = subprocess.run(
            [str(self.python), "-c", _INSPECT, *names],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        data = json.loads(out)
        installed = set(data["installed"]) - {"pip", "setuptools", "wheel"}
        return installed, {k: set(v) for k, v in data["closures"].items()}

    def run(self, *argv: str) -> str:
        return subprocess.run(
            list(argv), check=True, capture_output=True, text=True, cwd=self.bin.parent
        ).stdout

    def py(self, code: str) -> str:
        return self.run(str(self.python), "-c", code)


def test_aegis_core_alone_pulls_in_nothing_and_works(built: Built, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv", built)
    venv.install("aegis-core")
    installed, _ = venv.inspect()
    assert installed == {"aegis-core"}
    assert "Gate" in venv.py("import aegis.core; print(aegis.core.__all__)")
    assert "verify" in venv.run(str(venv.bin / "aegis-receipts"), "--help")


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_an_adapter_pulls_core_and_its_sdk_and_nothing_else(
    built: Built, tmp_path: Path, name: str
) -> None:
    sdk, imports = ADAPTERS[name]
    venv = Venv(tmp_path / "venv", built)
    venv.install(name)
    installed, closures = venv.inspect(sdk)
    # Exactly: this adapter, the core, the SDK and what the SDK itself requires.
    assert installed == {name, "aegis-core"} | closures[sdk]
    assert sdk in installed
    # Nothing of the other providers, of the proxy, or of aiohttp's server.
    others = {n: v for n, v in ADAPTERS.items() if n != name}
    assert not installed & {v[0] for v in others.values()}
    assert not installed & ({"aegis-proxy"} | set(others))
    assert "aiohttp" not in installed
    venv.py(f"import {imports}, aegis.core")
    # The other adapters are not importable: the namespace holds only what was installed.
    modules = [v[1] for v in others.values()] + ["aegis.proxy"]
    out = venv.py(
        f"import importlib.util as u\nprint(*[u.find_spec(m) is None for m in {modules!r}])"
    )
    assert out.split() == ["True"] * len(modules)


def test_aegis_proxy_pulls_the_rest_and_its_command_runs(built: Built, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv", built)
    venv.install("aegis-proxy")
    installed, closures = venv.inspect("aegis-proxy")
    assert set(OURS) <= installed
    assert {"openai", "google-genai", "aiohttp"} <= installed
    assert installed == closures["aegis-proxy"]
    assert "serve" in venv.run(str(venv.bin / "aegis-proxy"), "--help")
    checked = venv.run(str(venv.bin / "aegis-proxy"), "check-config", str(ROOT / "demo/aegis.toml"))
    assert re.search(r"aegis\.toml: ok \(\d+ providers, \d+ tenants\)", checked), checked
    venv.py("import aegis.core, aegis.adapters.openai, aegis.adapters.gemini, aegis.proxy")

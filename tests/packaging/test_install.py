"""Each distribution installs by name and what is installed is ours; every install line of the
READMEs runs here as written.

The installs go through pip's default package index, reachable, with our freshly built wheels
beside it (``--find-links``, given as ``PIP_FIND_LINKS`` where the README line is the bare
``pip install NAME`` a user types once the release is on the index). That is the situation in
which the old name ``aegis-core`` handed out an unrelated project's higher version: here the
installed files must be byte for byte our wheel's, and each distribution must pull in exactly
what it declares and what that requires in turn.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from wheels import DOCS, ROOT, Built, Venv, norm, our_projects

CORE = "aegis-runtime-core"
OPENAI = "aegis-runtime-adapters-openai"
GEMINI = "aegis-runtime-adapters-gemini"
ANTHROPIC = "aegis-runtime-adapters-anthropic"
PROXY = "aegis-runtime-proxy"

# Every install line the READMEs show, each run by one test below.
INSTALL_LINES = {
    "pip install dist/*.whl": "test_the_built_wheels_install_together",
    "uv pip install --find-links dist aegis-runtime-proxy": "test_uv_installs_one_from_dist",
    "pip install aegis-runtime-core": "test_core_by_name_pulls_nothing",
    'pip install "aegis-runtime-core[ed25519,redis]"': "test_core_by_name_pulls_nothing",
    "pip install aegis-runtime-adapters-openai": "test_an_adapter_pulls_core_and_its_sdk_only",
    "pip install aegis-runtime-adapters-gemini": "test_an_adapter_pulls_core_and_its_sdk_only",
    "pip install aegis-runtime-adapters-anthropic": "test_an_adapter_pulls_core_and_its_sdk_only",
    "pip install aegis-runtime-proxy": "test_the_proxy_by_name_pulls_the_rest_and_runs",
    'pip install "aegis-runtime-proxy[otel]"': "test_the_proxy_by_name_pulls_the_rest_and_runs",
}


def install_lines_in_docs() -> set[str]:
    """Every ``pip install`` the docs show: code-block lines (comments cut) and inline code."""
    found = set()
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M):
            for line in block.splitlines():
                command = line.split("  #")[0].strip()
                if "pip install" in command:
                    found.add(command)
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        found |= {span for span in re.findall(r"`([^`\n]+)`", prose) if "pip install" in span}
    return found


def line(command: str) -> str:
    assert command in INSTALL_LINES, command
    assert command in install_lines_in_docs(), f"no README shows {command!r} any more"
    return command


def test_every_install_line_of_the_readmes_is_run_here() -> None:
    assert install_lines_in_docs() == set(INSTALL_LINES)
    tests = {name for name in globals() if name.startswith("test_")}
    assert set(INSTALL_LINES.values()) <= tests


def by_name(venv: Venv, command: str, built: Built) -> str:
    # The bare `pip install NAME`, with our wheels where the release will be: beside the index.
    return venv.sh(line(command), built.checkout, PIP_FIND_LINKS=str(built.dist))


def assert_pulls_only_what_it_declares(
    venv: Venv, built: Built, name: str, *extras: str
) -> set[str]:
    """The environment holds ``name``, what it declares, and what those require: nothing else;
    and what it declares is its pyproject's list."""
    _, dists = venv.inspect()
    declared = our_projects()[name]["dependencies"]
    _, requires = dists[norm(name)]
    # As written in the pyproject, up to the order the build backend writes specifiers in.
    installed_requires = {str(Requirement(r)) for r in requires if "extra ==" not in r}
    assert installed_requires == {str(Requirement(r)) for r in declared}, name
    installed = set(dists)
    wanted = f"{name}[{','.join(extras)}]" if extras else name
    assert installed == venv.closure(wanted), wanted
    for ours in installed & set(our_projects()):
        venv.assert_ours(ours, built)
    return installed


def test_core_by_name_pulls_nothing(built: Built, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    by_name(venv, "pip install aegis-runtime-core", built)
    assert assert_pulls_only_what_it_declares(venv, built, CORE) == {CORE}
    assert "Gate" in venv.py("import aegis.core; print(aegis.core.__all__)")
    assert "verify" in venv.run(str(venv.bin / "aegis-receipts"), "--help")

    by_name(venv, 'pip install "aegis-runtime-core[ed25519,redis]"', built)
    installed = assert_pulls_only_what_it_declares(venv, built, CORE, "ed25519", "redis")
    assert {"cryptography", "redis"} <= installed
    venv.py(
        "from aegis.core import Ed25519Signer, RedisLedger\n"
        "import redis  # the redis extra\n"
        "Ed25519Signer.generate(key_id='k').public_key_pem()\n"
    )


@pytest.mark.parametrize(
    ("name", "sdk", "other_sdk", "imports"),
    [
        (OPENAI, "openai", "google-genai", "aegis.adapters.openai"),
        (GEMINI, "google-genai", "openai", "aegis.adapters.gemini"),
        (ANTHROPIC, "anthropic", "openai", "aegis.adapters.anthropic"),
    ],
)
def test_an_adapter_pulls_core_and_its_sdk_only(
    built: Built, tmp_path: Path, name: str, sdk: str, other_sdk: str, imports: str
) -> None:
    venv = Venv(tmp_path / "venv")
    by_name(venv, f"pip install {name}", built)
    installed = assert_pulls_only_what_it_declares(venv, built, name)
    # Exactly: this adapter, the core, the SDK and what the SDK itself requires.
    assert installed == {name, CORE} | venv.closure(sdk)
    # Nothing of the other provider, of the proxy, or of aiohttp's server.
    assert other_sdk not in installed
    assert not installed & {PROXY, OPENAI, GEMINI, ANTHROPIC} - {name}
    assert "aiohttp" not in installed
    venv.py(f"import {imports}, aegis.core")
    # The other adapter is not importable: the namespace holds only what was installed.
    other = "gemini" if name == OPENAI else "openai"
    out = venv.py(
        "import importlib.util as u\n"
        f"print(u.find_spec('aegis.adapters.{other}') is None, u.find_spec('aegis.proxy') is None)"
    )
    assert out.split() == ["True", "True"]


def test_the_proxy_by_name_pulls_the_rest_and_runs(built: Built, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    by_name(venv, "pip install aegis-runtime-proxy", built)
    installed = assert_pulls_only_what_it_declares(venv, built, PROXY)
    assert {CORE, OPENAI, GEMINI, ANTHROPIC, "openai", "google-genai", "anthropic"} <= installed
    assert "aiohttp" in installed
    assert "serve" in venv.run(str(venv.bin / "aegis-proxy"), "--help")
    checked = venv.run(str(venv.bin / "aegis-proxy"), "check-config", str(ROOT / "demo/aegis.toml"))
    assert re.search(r"aegis\.toml: ok \(\d+ providers, \d+ tenants\)", checked), checked
    venv.py(
        "import aegis.core, aegis.adapters.openai, aegis.adapters.gemini, "
        "aegis.adapters.anthropic, aegis.proxy"
    )

    by_name(venv, 'pip install "aegis-runtime-proxy[otel]"', built)
    with_otel = assert_pulls_only_what_it_declares(venv, built, PROXY, "otel")
    # The anthropic SDK already requires opentelemetry-api; the extra adds the SDK.
    assert with_otel >= {"opentelemetry-api", "opentelemetry-sdk"}
    assert "opentelemetry-sdk" in with_otel - installed
    venv.py("import opentelemetry.sdk.trace")


def test_the_built_wheels_install_together(built: Built, tmp_path: Path) -> None:
    # The README's lines from a checkout, as written: `make build` (the fixture), then this.
    venv = Venv(tmp_path / "venv")
    venv.sh(line("pip install dist/*.whl"), built.checkout)
    installed = venv.installed()
    assert installed == venv.closure(*our_projects())
    for name in our_projects():
        venv.assert_ours(name, built)
    assert "serve" in venv.run(str(venv.bin / "aegis-proxy"), "--help")


def test_uv_installs_one_from_dist(built: Built, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    venv.sh(line("uv pip install --find-links dist aegis-runtime-proxy"), built.checkout)
    assert_pulls_only_what_it_declares(venv, built, PROXY)
    assert "serve" in venv.run(str(venv.bin / "aegis-proxy"), "--help")

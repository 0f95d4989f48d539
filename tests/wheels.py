"""Our distributions as a user meets them: built from a checkout, installed into fresh virtual
environments by name, with the package index reachable and the built wheels beside it.

Used by ``tests/packaging``. Nothing here skips: a missing network is a failure, because an
install that cannot reach the index proves nothing about which project the index would hand out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "demo/README.md", *sorted(ROOT.glob("packages/*/README.md")))


def norm(name: str) -> str:
    """A distribution name as the index compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def our_projects() -> dict[str, dict[str, Any]]:
    """The ``[project]`` table of every workspace member, by distribution name."""
    projects = {}
    for path in sorted(ROOT.glob("packages/*/pyproject.toml")):
        project = tomllib.loads(path.read_text())["project"]
        projects[project["name"]] = project
    return projects


def requirement_name(requirement: str) -> str:
    return norm(re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0])


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(z.read(name).decode())


def _sha256(data: bytes) -> str:
    # RECORD's encoding: urlsafe base64 without padding.
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_files(wheel: Path) -> dict[str, str]:
    """Each file the wheel installs and its hash, checked against the wheel's own RECORD."""
    with zipfile.ZipFile(wheel) as z:
        record_name = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
        record = {}
        for line in z.read(record_name).decode().splitlines():
            path, digest, _size = line.rsplit(",", 2)
            record[path] = digest
        contents = {n: _sha256(z.read(n)) for n in z.namelist() if not n.endswith("/")}
    # RECORD lists itself without a hash; every other file must match it exactly.
    assert record.pop(record_name) == ""
    del contents[record_name]
    assert contents == record, f"{wheel.name}: RECORD does not match the wheel's contents"
    return record


@dataclass(frozen=True)
class Built:
    """The output of ``make build`` in a copy of the checkout."""

    checkout: Path
    """The copy the build ran in (what a user cloned)."""
    dist: Path
    """``dist/`` in that copy."""
    wheels: dict[str, Path]
    """Our wheel for each distribution name."""

    def version(self, name: str) -> str:
        return str(wheel_metadata(self.wheels[name])["Version"])


def copy_checkout(dest: Path) -> Path:
    """What ``make build`` needs of a checkout, copied, so its ``dist/`` is not this tree's."""
    dest.mkdir()
    for name in ("Makefile", "pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "packages",
        dest / "packages",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "dist", "build"),
    )
    return dest


def build(dest: Path) -> Built:
    """Run ``make build`` (the README's line) in a copy of the checkout."""
    checkout = copy_checkout(dest)
    done = subprocess.run(
        ["make", "--no-print-directory", "build"],
        cwd=checkout,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    dist = checkout / "dist"
    wheels: dict[str, Path] = {}
    for wheel in sorted(dist.glob("*.whl")):
        name = str(wheel_metadata(wheel)["Name"])
        assert name not in wheels, f"two wheels of {name}"
        wheels[name] = wheel
    return Built(checkout, dist, wheels)


# Lists every installed distribution (version, requirements) and where files go.
_INSPECT = r"""
import json, sysconfig
from importlib import metadata
print(json.dumps({
    "purelib": sysconfig.get_paths()["purelib"],
    "dists": {d.metadata["Name"]: [d.version, d.requires or []] for d in metadata.distributions()},
}))
"""

# Keeps the machine's own pip and uv settings (extra indexes, find-links, constraints) out of
# the installs: only the default index, and whatever the command line itself names, may serve.
_KEPT = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK", "UV_CACHE_DIR")


class Venv:
    """A fresh virtual environment (with pip), used as if activated."""

    def __init__(self, path: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        self.path = path
        self.bin = path / "bin"
        self.python = self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        uv = os.environ.get("UV") or shutil.which("uv")
        assert uv, "uv must be installed (make install does it)"
        kept = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHON")) or k in _KEPT
        }
        path = os.pathsep.join([str(self.bin), str(Path(uv).parent), kept.get("PATH", "")])
        return {
            **kept,
            "PATH": path,
            "VIRTUAL_ENV": str(self.path),
            "PIP_CONFIG_FILE": os.devnull,
            "UV_NO_CONFIG": "1",
            **extra,
        }

    def sh(self, line: str, cwd: Path, **extra: str) -> str:
        """Run one line as a user types it in a shell where this environment is active."""
        done = subprocess.run(
            ["bash", "-c", line], cwd=cwd, env=self.env(**extra), capture_output=True, text=True
        )
        assert done.returncode == 0, f"{line}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def run(self, *argv: str) -> str:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, cwd=self.path, env=self.env()
        )
        assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def py(self, code: str) -> str:
        return self.run(str(self.python), "-c", code)

    def inspect(self) -> tuple[Path, dict[str, tuple[str, list[str]]]]:
        data = json.loads(self.py(_INSPECT))
        dists = {
            norm(name): (version, requires)
            for name, (version, requires) in data["dists"].items()
            if norm(name) not in ("pip", "setuptools", "wheel")
        }
        return Path(data["purelib"]), dists

    def installed(self) -> set[str]:
        return set(self.inspect()[1])

    def closure(self, *names: str) -> set[str]:
        """What the named distributions require, transitively (markers evaluated, extras of
        the named ones followed as written, e.g. ``aegis-runtime-core[redis]``)."""
        code = (
            "import json, sys\n"
            "from importlib import metadata\n"
            "from pip._vendor.packaging.requirements import Requirement\n"
            "from pip._vendor.packaging.utils import canonicalize_name as norm\n"
            "dists = {norm(d.metadata['Name']): d for d in metadata.distributions()}\n"
            "seen = set()\n"
            "def walk(name, extras):\n"
            "    key = (norm(name), frozenset(extras))\n"
            "    if key in seen: return\n"
            "    seen.add(key)\n"
            "    for raw in dists[norm(name)].requires or []:\n"
            "        req = Requirement(raw)\n"
            "        if req.marker is None or any(req.marker.evaluate({'extra': e})"
            " for e in ('', *extras)):\n"
            "            walk(req.name, req.extras)\n"
            "for arg in sys.argv[1:]:\n"
            "    req = Requirement(arg)\n"
            "    walk(req.name, req.extras)\n"
            "print(json.dumps(sorted({n for n, _ in seen})))\n"
        )
        return set(json.loads(self.run(str(self.python), "-c", code, *names)))

    def assert_ours(self, name: str, built: Built) -> None:
        """The installed ``name`` is our wheel: its version, and every file byte for byte."""
        purelib, dists = self.inspect()
        version, _ = dists[norm(name)]
        assert version == built.version(name), f"{name} {version} is not the built wheel"
        for path, digest in wheel_files(built.wheels[name]).items():
            installed = purelib / path
            assert installed.is_file(), f"{name}: {path} is not installed"
            assert _sha256(installed.read_bytes()) == digest, f"{name}: {path} is not ours"

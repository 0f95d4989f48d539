"""A guard on the package index: none of our distribution names may belong to someone else.

For each name (every workspace member, and the names the README's package table reserves) the
index's JSON API must answer either 404, the name is free, or a project that is ours. "Ours"
is judged by the metadata we publish: the author ``Aegis maintainers`` and, for a member of
this tree, its exact summary (for a reserved name, a summary starting ``Aegis ``). Metadata
can be copied, so this is a tripwire against an unrelated project holding the name (as one
holds ``aegis-core``), not a proof of ownership; that is the index account, and the install
tests, which check byte for byte that installing by name gives our wheel.

The index asked is pip's own default, the one a user's ``pip install NAME`` resolves against.
An unreachable index, or any other answer, fails: it never skips.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from wheels import ROOT, our_projects

AUTHOR = "Aegis maintainers"


def reserved_names() -> set[str]:
    """Every distribution name in the README's package table."""
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(aegis-runtime-[a-z-]+)` \|", readme, re.M))


def our_names() -> list[str]:
    return sorted(set(our_projects()) | reserved_names())


@pytest.fixture(scope="module")
def json_api(tmp_path_factory: pytest.TempPathFactory) -> str:
    # pip's default index, read from pip itself (a fresh venv has it; the test's own uv
    # environment has no pip).
    venv = tmp_path_factory.mktemp("pip") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    code = "from pip._internal.models.index import PyPI; print(PyPI.pypi_url)"
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", code], check=True, capture_output=True, text=True
    )
    url = out.stdout.strip()
    assert url.startswith("https://"), url
    return url


def project_on_index(json_api: str, name: str) -> dict[str, Any] | None:
    """The index's JSON for ``name``, or None when the name is free (404)."""
    try:
        with urllib.request.urlopen(f"{json_api}/{name}/json", timeout=60) as response:
            data: dict[str, Any] = json.load(response)
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise AssertionError(f"{name}: the index answered {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise AssertionError(f"{name}: the index is unreachable ({exc.reason})") from exc


def why_not_ours(name: str, info: dict[str, Any], projects: dict[str, dict[str, Any]]) -> str:
    """Why the index's project ``info`` is not ours; empty when it is."""
    author = info.get("author") or ""
    summary = info.get("summary") or ""
    if author != AUTHOR:
        return f"{name} on the index is by {author!r}, summary {summary!r}"
    expected = projects[name]["description"] if name in projects else None
    if expected is not None and summary != expected:
        return f"{name} on the index has the summary {summary!r}, ours is {expected!r}"
    if expected is None and not summary.startswith("Aegis "):
        return f"{name} on the index has the summary {summary!r}"
    return ""


def test_the_names_checked_are_ours_and_include_the_reserved_ones() -> None:
    names = our_names()
    assert set(our_projects()) <= reserved_names()  # every member is in the README's table
    assert "aegis-runtime-adapters-anthropic" in names
    assert all(n.startswith("aegis-runtime-") for n in names)


@pytest.mark.parametrize("name", our_names())
def test_our_name_is_free_on_the_index_or_ours(json_api: str, name: str) -> None:
    found = project_on_index(json_api, name)
    if found is not None:
        problem = why_not_ours(name, found["info"], our_projects())
        assert not problem, problem


def test_the_guard_tells_the_unrelated_aegis_core_from_ours(json_api: str) -> None:
    # The name we left: it exists on the index and is someone else's. The same judgement that
    # passes our names must reject it, or the guard above could never fail.
    found = project_on_index(json_api, "aegis-core")
    assert found is not None, "aegis-core is free on the index now: pick another foreign name"
    as_if_ours = {"aegis-core": our_projects()["aegis-runtime-core"]}
    assert why_not_ours("aegis-core", found["info"], as_if_ours)
    # And a project carrying our metadata passes.
    mine = {"author": AUTHOR, "summary": as_if_ours["aegis-core"]["description"]}
    assert not why_not_ours("aegis-core", mine, as_if_ours)
    assert why_not_ours("aegis-core", {**mine, "summary": "Aegis, but another"}, as_if_ours)


def test_the_index_answers_for_a_name_that_exists(json_api: str) -> None:
    # A 404 for every name could also mean a wrong URL: the same request finds pip itself.
    found = project_on_index(json_api, "pip")
    assert found is not None
    assert found["info"]["name"] == "pip"

"""The proxy's shape, checked: one module settles reservations, and imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

PROXY = Path(__file__).resolve().parents[2] / "packages/aegis-proxy/src/aegis/proxy"


def _calls_to(attribute: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(PROXY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == attribute
            ):
                found[path.name] = found.get(path.name, 0) + 1
    return found


def test_only_the_attempt_owner_settles() -> None:
    assert _calls_to("settle") == {"attempt.py": 1}


def test_the_proxy_has_no_import_cycle() -> None:
    imports: dict[str, set[str]] = {}
    for path in PROXY.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("aegis.proxy.")
            ):
                names.add(node.module.removeprefix("aegis.proxy."))
        imports[path.stem] = names

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for name in imports.get(start, ()):
            if name == goal or (name not in seen and reaches(name, goal, seen | {name})):
                return True
        return False

    cycles = sorted(m for m in imports if reaches(m, m, {m}))
    assert cycles == []


def test_the_gate_module_stays_readable() -> None:
    gate = PROXY.parents[3] / "aegis-core/src/aegis/core/gate.py"
    assert len(gate.read_text().splitlines()) < 400


def test_the_forwarder_and_the_attempt_owner_are_handed_their_collaborators() -> None:
    """Neither reads the application's state (``request.app[...]``): what they use is passed
    in, so a config reload cannot change a call halfway through."""
    for name in ("forward.py", "attempt.py", "exchange.py"):
        tree = ast.parse((PROXY / name).read_text())
        reads = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "app"
        ]
        assert reads == [], f"{name} reads app state at lines {reads}"

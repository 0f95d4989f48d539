"""The proxy README's endpoint table lists every route the proxy serves, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from aegis.proxy import create_app, parse_settings

README = Path(__file__).resolve().parents[2] / "packages/aegis-proxy/README.md"


def _table() -> str:
    text = README.read_text()
    return text.split("## Endpoints\n", 1)[1].split("\n### ", 1)[0]


def _routes() -> set[tuple[str, str]]:
    settings = parse_settings({"providers": {"openai": {"type": "openai"}}}, environ={})
    app = create_app(settings)
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and isinstance(path, str):
            routes.add((route.method, path))
    return routes


def _listed(table: str, method: str, path: str) -> bool:
    # A placeholder ({version}, {target}, ...) stands for any one path segment; a cell may
    # list several paths after one method ("`GET /a`, `/b`").
    pattern = "".join(
        r"[^/\s`]+" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", path)
    )
    rows = [row for row in table.splitlines() if row.startswith("| ") and method in row]
    return any(re.search(rf"`(?:{method} )?{pattern}`", row) for row in rows)


def test_every_route_is_in_the_endpoint_table() -> None:
    table = _table()
    missing = sorted(r for r in _routes() if not _listed(table, *r))
    assert not missing, f"routes missing from the README's endpoint table: {missing}"


def test_the_table_names_no_route_the_proxy_lacks() -> None:
    served = [re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(p)) for _, p in _routes()]
    for row in _table().splitlines():
        if not row.startswith("| `"):
            continue
        for path in re.findall(r"`(?:[A-Z]+ )?(/[^`\s]*)`", row.split(" | ")[0]):
            # A placeholder stands for a segment; `:generateContent` is the model's action.
            sample = re.sub(r"\{[^}]+\}", "x", path).split(":")[0]
            assert any(re.fullmatch(p, sample) for p in served), (
                f"the README lists {path}, which the proxy does not serve"
            )

"""``/dashboard``: the spend dashboard, static files shipped in this package (no build step).

The page holds no data of its own: it asks for the admin key once, keeps it in the tab's
``sessionStorage`` (gone when the tab closes, never sent anywhere but this proxy's
``/admin/`` API) and reads that API every few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["DASHBOARD_DIR", "routes"]

DASHBOARD_DIR: Final = Path(__file__).parent / "dashboard"
_FILES: Final = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
_HEADERS: Final = {
    # Everything the page loads comes from this proxy; nothing inline, no frames.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard/")


def routes() -> list[web.RouteDef]:
    # A handful of small files: read once when the app is built, served from memory.
    files = {name: (DASHBOARD_DIR / name).read_bytes() for name in _FILES}

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "index.html")
        body = files.get(name)
        if body is None:
            raise web.HTTPNotFound()
        response = web.Response(body=body, headers=_HEADERS)
        response.content_type = _FILES[name]
        response.charset = "utf-8"
        return response

    return [
        web.get("/dashboard", _index),
        web.get("/dashboard/", serve),
        web.get("/dashboard/{name}", serve),
    ]

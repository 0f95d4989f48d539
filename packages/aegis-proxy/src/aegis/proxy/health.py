"""``/healthz`` (the process answers) and ``/readyz`` (governance can be applied)."""

from __future__ import annotations

import logging

from aiohttp import web

from aegis.proxy.state import GATE

__all__ = ["routes"]

logger = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    problems = []
    try:
        await gate.ledger.balances(tenant_id="aegis:readyz", keys=["probe"])
    except Exception as exc:
        problems.append(f"ledger: {type(exc).__name__}")
    try:
        gate.sink.check()
        await gate.sink.tail()
    except Exception as exc:
        problems.append(f"receipts: {type(exc).__name__}")
    if problems:
        logger.warning("not ready: %s", "; ".join(problems))
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]

"""``GET /v1/aegis/usage``: a tenant reads its own usage with its own key, and nothing of any
other tenant (naming another tenant, in the path or as ``?tenant=``, is refused with 403)."""

from __future__ import annotations

from aiohttp import web

from aegis.proxy.errors import Forbidden
from aegis.proxy.operator import OPERATOR
from aegis.proxy.state import CONTROL, GATE, KEYS
from aegis.proxy.usage import tenant_usage

__all__ = ["routes"]


async def usage(request: web.Request) -> web.StreamResponse:
    tenant_id = (await request.app[KEYS].authenticate(request)).tenant_id
    for named in (request.match_info.get("tenant_id"), request.query.get("tenant")):
        if named is not None and named != tenant_id:
            raise Forbidden("a tenant key reads only its own usage", code="other_tenant")
    operator = request.app[OPERATOR]
    policy = await request.app[CONTROL].get_policy(tenant_id=tenant_id)
    if policy is None:
        raise Forbidden(f"tenant {tenant_id!r} is not configured", code="unknown_tenant")
    data = await tenant_usage(request.app[GATE], operator.stats, policy)
    return web.json_response(data, headers={"Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/v1/aegis/usage", usage),
        web.get("/v1/aegis/usage/{tenant_id}", usage),
    ]

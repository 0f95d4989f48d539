"""Typed application state: every ``web.AppKey`` the proxy uses, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from aegis.core import Gate, InMemoryPolicyProvider
from aegis.proxy.auth import KeyIndex
from aegis.proxy.config import Settings
from aegis.proxy.control_plane import ControlPlane
from aegis.proxy.idempotency import IdempotencyBackend
from aegis.proxy.routing import Router
from aegis.proxy.stored_responses import ResponseOwners
from aegis.proxy.upstream import Upstream

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = [
    "CONTROL",
    "GATE",
    "IDEMPOTENCY",
    "KEYS",
    "POLICIES",
    "RESPONSE_OWNERS",
    "ROUTER",
    "SETTINGS",
    "TRACER_PROVIDER",
    "UPSTREAMS",
]

SETTINGS = web.AppKey("settings", Settings)
GATE = web.AppKey("gate", Gate)
POLICIES = web.AppKey("policies", InMemoryPolicyProvider)
KEYS = web.AppKey("keys", KeyIndex)
CONTROL = web.AppKey("control", ControlPlane)
"""Tenants, policies and keys of the file and the control-plane store (the Gate's policies)."""
ROUTER = web.AppKey("router", Router)
IDEMPOTENCY: web.AppKey[IdempotencyBackend] = web.AppKey("idempotency")
UPSTREAMS = web.AppKey("upstreams", dict[str, Upstream])
RESPONSE_OWNERS = web.AppKey("response_owners", ResponseOwners)
# Typed lazily, so OpenTelemetry is imported only when tracing is configured.
TRACER_PROVIDER: web.AppKey[TracerProvider] = web.AppKey("tracer_provider")
"""Set before startup to trace into this provider (with ``tracing`` not ``off``)."""

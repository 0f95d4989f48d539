"""OpenTelemetry traces: a server span per proxied request (continuing an incoming W3C
``traceparent``) and a GenAI client span per Gate decision, built from its receipt.

Only imported when ``[observability] tracing`` is not ``off``: without the ``otel`` extra, and
with tracing off, nothing of OpenTelemetry is loaded and requests pay nothing for it. Spans
follow the GenAI semantic conventions (``gen_ai.system``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens`` ...) plus ``aegis.*`` attributes for tenant, decision and cost;
never a prompt, a completion or a key.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from opentelemetry import context as otel_context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aegis.core import Receipt
from aegis.proxy.config import ObservabilitySettings

__all__ = ["RequestSpan", "Tracing", "build_tracer_provider"]

_SYSTEMS: Final = {"openai": "openai", "gemini": "gcp.gemini", "anthropic": "anthropic"}
_OPERATIONS: Final = {
    "llm:invoke": "chat",
    "llm:stream": "chat",
    "embeddings:create": "embeddings",
}


def build_tracer_provider(settings: ObservabilitySettings) -> tuple[TracerProvider, bool]:
    """The tracer provider the settings ask for, and whether the proxy owns it (and so must
    shut it down)."""
    if settings.tracing == "global":
        return trace.get_tracer_provider(), False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if settings.tracing == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise RuntimeError(
                "[observability] tracing = 'otlp' needs opentelemetry-exporter-otlp-proto-http"
            ) from exc
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    provider = SdkTracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, True


class RequestSpan:
    """The server span of one request, current in its context until :meth:`end`."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span = span
        self.token = token

    def end(self, status: int) -> None:
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        otel_context.detach(self.token)  # type: ignore[arg-type]
        span.end()


class Tracing:
    """Makes the spans; one per app."""

    def __init__(self, provider: TracerProvider, provider_types: Mapping[str, str]) -> None:
        self.tracer = provider.get_tracer("aegis.proxy")
        self.propagator = TraceContextTextMapPropagator()
        self.provider_types = dict(provider_types)

    def start_request(self, request: web.Request, route: str) -> RequestSpan:
        parent = self.propagator.extract(request.headers)
        span = self.tracer.start_span(
            f"{request.method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return RequestSpan(span, token)

    def record(self, receipt: Receipt) -> None:
        """A GenAI span for one decision, timed by its receipt, under the current span."""
        end_ns = time.time_ns()
        operation = _OPERATIONS.get(receipt.capability, receipt.capability)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": receipt.model or "",
            "aegis.tenant_id": receipt.tenant_id,
            "aegis.request_id": receipt.request_id,
            "aegis.receipt_id": receipt.receipt_id,
            "aegis.decision": "allowed" if receipt.decision.allowed else "denied",
            "aegis.status": receipt.status,
            "aegis.cost_usd": receipt.actual_usd,
            "aegis.reserved_usd": receipt.reserved_usd,
            "aegis.usage_source": receipt.usage_source,
        }
        system = self.provider_types.get(receipt.provider or "")
        if system is not None:
            attributes["gen_ai.system"] = _SYSTEMS.get(system, system)
            attributes["aegis.provider"] = receipt.provider
        if receipt.decision.reason:
            attributes["aegis.decision.reason"] = receipt.decision.reason
        if receipt.decision.budget:
            attributes["aegis.decision.budget"] = receipt.decision.budget
        if receipt.run_id:
            attributes["aegis.run_id"] = receipt.run_id
        usage = receipt.usage
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if receipt.upstream_status is not None:
            attributes["http.response.status_code"] = receipt.upstream_status
        if receipt.status == "upstream_error":
            attributes["error.type"] = "upstream_error"
        span = self.tracer.start_span(
            f"{operation} {receipt.model or ''}".strip(),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end_ns - receipt.latency_us * 1000,
        )
        if receipt.status in ("upstream_error", "denied"):
            span.set_status(Status(StatusCode.ERROR, receipt.decision.reason or receipt.status))
        span.end(end_time=end_ns)

"""OpenTelemetry tracing: one trace per task, spans for routing, planning, queue wait, agent steps,
tool calls and model calls (with token counts).

Off by default, at no real cost: without a configured provider the OpenTelemetry API hands out
no-op spans. ``configure_otlp(endpoint)`` (the hive calls it when ``Settings.otlp_endpoint`` is
set) exports over OTLP/gRPC; tests install their own provider with :func:`use_provider`.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

__all__ = ["configure_otlp", "tracer", "use_provider"]

_provider: Any = None


def use_provider(provider: Any) -> None:
    """Send mcphive's spans to ``provider`` (``None``: back to the global one)."""
    global _provider
    _provider = provider


def tracer() -> trace.Tracer:
    """The tracer every mcphive span comes from."""
    provider = _provider if _provider is not None else trace.get_tracer_provider()
    return provider.get_tracer("mcphive")


def configure_otlp(endpoint: str, service_name: str = "mcphive") -> Any:
    """Export spans to an OTLP/gRPC collector at ``endpoint``; returns the provider (shut it down to flush)."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    use_provider(provider)
    return provider

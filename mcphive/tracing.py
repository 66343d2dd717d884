"""OpenTelemetry tracing: one trace per task, spans for routing, planning, queue wait, agent steps,
tool calls and model calls (with token counts).

Off by default, at no real cost: without a configured provider the OpenTelemetry API hands out
no-op spans. ``configure_otlp(endpoint)`` (the hive calls it when ``Settings.otlp_endpoint`` is
set) exports over OTLP/gRPC; tests install their own provider with :func:`use_provider`.

No credential leaves in a span: every span mcphive starts is wrapped so that its string
attributes, event attributes, status description and recorded exceptions (message and stack
trace) pass through :mod:`mcphive.redaction` before they reach the span, whatever provider or
exporter is installed. Spans that do not record skip it.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types

from mcphive.redaction import redact, redact_tree

__all__ = ["configure_otlp", "tracer", "use_provider"]

_provider: Any = None


def use_provider(provider: Any) -> None:
    """Send mcphive's spans to ``provider`` (``None``: back to the global one)."""
    global _provider
    _provider = provider


def tracer() -> trace.Tracer:
    """The tracer every mcphive span comes from; its spans redact credentials from what they carry."""
    provider = _provider if _provider is not None else trace.get_tracer_provider()
    return _RedactingTracer(provider.get_tracer("mcphive"))


def _clean(attributes: types.Attributes) -> types.Attributes:
    """``attributes`` with credentials redacted from every string value (one scan for all of them)."""
    if not attributes:
        return attributes
    values = [list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for v in attributes.values()]
    clean, kinds = redact_tree(values)
    if not kinds:
        return attributes
    return {key: tuple(v) if isinstance(v, list) else v for key, v in zip(attributes, clean, strict=True)}


class _RedactingSpan(trace.Span):
    """A span that redacts credentials from every text it is given, then hands it to the real span."""

    def __init__(self, inner: trace.Span) -> None:
        self._inner = inner

    def end(self, end_time: int | None = None) -> None:
        self._inner.end(end_time)

    def get_span_context(self) -> SpanContext:
        return self._inner.get_span_context()

    def is_recording(self) -> bool:
        return self._inner.is_recording()

    def update_name(self, name: str) -> None:
        self._inner.update_name(redact(name) if self.is_recording() else name)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.is_recording():
            self._inner.set_attributes(_clean(attributes) or {})

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        self.set_attributes({key: value})

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self.is_recording():
            self._inner.add_event(name, _clean(attributes), timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self.is_recording():
            self._inner.add_link(context, _clean(attributes))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.is_recording():
            if isinstance(status, Status) and status.description:
                status = Status(status.status_code, redact(status.description))
            description = redact(description) if description else description
        self._inner.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        if not self.is_recording():
            return
        texts = {
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
        }
        [clean], _ = redact_tree([texts])
        self._inner.record_exception(exception, {**clean, **(_clean(attributes) or {})}, timestamp, escaped)


class _RedactingTracer(trace.Tracer):
    """Hands out :class:`_RedactingSpan`s around the spans of the tracer it wraps."""

    def __init__(self, inner: trace.Tracer) -> None:
        self._inner = inner

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        span = self._inner.start_span(
            name, context, kind, None, links, start_time, record_exception, set_status_on_exception
        )
        wrapped = _RedactingSpan(span)
        if attributes:
            wrapped.set_attributes(attributes)
        return wrapped

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
        )
        # use_span records an escaping exception and sets the error status through the wrapper.
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


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

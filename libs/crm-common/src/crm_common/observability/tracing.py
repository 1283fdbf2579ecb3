"""OpenTelemetry traces: one trace follows a request through the gateway, the services, Postgres and RabbitMQ.

Configured only from the standard OpenTelemetry environment. Tracing is on when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not
true; spans then go over OTLP/HTTP in batches (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` apply as documented by OpenTelemetry). When it is off nothing is
installed: no middleware, no wrapped driver calls, and events carry no trace context, so it costs nothing.

What is traced:
- every HTTP request a service or the gateway serves (opentelemetry-instrumentation-fastapi) and every
  httpx call it makes, which carries `traceparent` to the next service (opentelemetry-instrumentation-httpx);
- every Postgres statement through asyncpg, SQLAlchemy's included (opentelemetry-instrumentation-asyncpg);
- events: the context current when an event is written to the outbox travels inside the CloudEvent as its
  `traceparent` attribute (the CloudEvents distributed-tracing extension), so the relay's `publish` span and
  each subscriber's `process` span join the trace of the request that made the change. The aio-pika
  instrumentation is not used on purpose: it would start from the relay's own context, a new trace for
  every message, since the outbox publishes long after the request that wrote the event has ended.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()

# The provider spans go to: a test's (see `crm_common.testing.recording_spans`) or the process's own.
_override: Any = None
_process_provider: Any = None
_process_provider_built = False


def exporting_configured() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def active_provider(service_name: str | None = None) -> Any:
    """The SDK tracer provider in use, or None when tracing is off (then nothing is instrumented)."""
    global _process_provider, _process_provider_built
    if _override is not None:
        return _override
    if not _process_provider_built:
        _process_provider_built = True
        if exporting_configured():
            _process_provider = _build_otlp_provider(service_name or "corral")
    return _process_provider


def _build_otlp_provider(service_name: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES on top of these defaults.
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource, sampler=without_orphans())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install_client_instrumentation(provider)
    return provider


def without_orphans(delegate: Any = None) -> Any:
    """The sampler from `OTEL_TRACES_SAMPLER`, minus traces that would be one lone statement or probe.

    Background loops (the outbox relay waiting for rows, the import worker polling for jobs, readiness
    checks) run statements and calls outside any request; traced, each would be a one-span trace every
    second. Work those loops do for a request or a job opens a span first, so it is still traced.
    """
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default

    inner = delegate or _get_from_env_or_default()

    class WithoutOrphans(Sampler):
        def should_sample(
            self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
        ):  # type: ignore[no-untyped-def]
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid and attributes and _is_background_noise(attributes):
                return SamplingResult(Decision.DROP)
            return inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"WithoutOrphans{{{inner.get_description()}}}"

    return WithoutOrphans()


_PROBE_SUFFIXES = ("/livez", "/readyz", "/metrics")


def _is_background_noise(attributes: Any) -> bool:
    if "db.system" in attributes or "db.system.name" in attributes:
        return True
    url = str(attributes.get("url.full") or attributes.get("http.url") or "")
    return url.split("?", 1)[0].endswith(_PROBE_SUFFIXES)


def install_client_instrumentation(provider: Any) -> None:
    """httpx and asyncpg are patched process-wide (their clients are built in many places)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)


def remove_client_instrumentation() -> None:
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    AsyncPGInstrumentor().uninstrument()


def set_override(provider: Any) -> None:
    global _override
    _override = provider


def instrument_app(app: Any, service_name: str) -> Any:
    """Server spans for every request but probes and scrapes; returns the provider (None when off)."""
    provider = active_provider(service_name)
    if provider is not None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider,
            excluded_urls="/livez,/readyz,/metrics",
            exclude_spans=["receive", "send"],
        )
    return provider


def shutdown(provider: Any) -> None:
    """Flushes the spans still queued when the process stops (a test's provider is left alone)."""
    if provider is not None and provider is _process_provider:
        provider.force_flush(timeout_millis=5000)


def tracer(name: str) -> Tracer:
    provider = active_provider()
    return provider.get_tracer(name) if provider is not None else trace.NoOpTracer()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the span in progress, or None outside a recorded trace (and when off)."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def traceparent_of(span: trace.Span) -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def context_from(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _propagator.extract({TRACEPARENT: traceparent})


def link_to(traceparent: str) -> Link | None:
    span_context = trace.get_current_span(_propagator.extract({TRACEPARENT: traceparent})).get_span_context()
    return Link(span_context) if span_context.is_valid else None


@contextmanager
def continued_span(
    name: str,
    *,
    traceparent: str | None,
    kind: SpanKind = SpanKind.INTERNAL,
    tracer_name: str = "corral",
    attributes: dict[str, Any] | None = None,
    links: Sequence[str] = (),
) -> Iterator[trace.Span]:
    """A span that continues the trace named by `traceparent` (work resumed from a job row or an event)."""
    span_links = [link for link in (link_to(tp) for tp in links if tp and tp != traceparent) if link]
    with tracer(tracer_name).start_as_current_span(
        name, context=context_from(traceparent), kind=kind, attributes=attributes, links=span_links
    ) as span:
        yield span


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the ids of the span in progress, so a log line leads to its trace."""
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict["trace_id"] = format(span_context.trace_id, "032x")
        event_dict["span_id"] = format(span_context.span_id, "016x")
    return event_dict

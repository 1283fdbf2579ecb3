"""Metrics (Prometheus) and traces (OpenTelemetry) for every Corral process.

- `crm_common.observability.metrics`: the shared figures (requests, database pool, outbox, consumers),
  the `/metrics` route, and the API a service uses to add its own: per-process counters and histograms
  (`counter`, `histogram`) and figures read from its database or broker when scraped (`StateMetric`,
  `DatabaseGauge`), handed to `create_service_app(state_metrics=...)`.
- `crm_common.observability.tracing`: OpenTelemetry set up from the standard `OTEL_*` environment
  (nothing at all when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset), the trace context carried in each
  CloudEvent (`traceparent`), and the log processor that puts the trace id in every line.
"""

"""Prometheus metrics: the figures every process shares, the `/metrics` route, and how a service adds its own.

Two kinds of figures, so that every replica tells the truth:

- **Per-process counters and histograms** (requests, rows imported, merges, publish lag): each process
  counts what it did; Prometheus sums the replicas. Under several uvicorn workers in one pod
  (`WEB_CONCURRENCY` > 1) the workers write to files in `PROMETHEUS_MULTIPROC_DIR` and whichever worker
  answers a scrape adds up every worker's files (prometheus-client's multiprocess mode), so a scrape
  never shows one worker's share. Define them at module level with `counter()` / `histogram()`.
- **State read when scraped** (outbox backlog, imports running, queue depths, queued sync changes):
  shared state lives in the database or the broker, so it is read from there at scrape time
  (`StateMetric`, `DatabaseGauge`) and every replica reports the same, true figure. Pass them to
  `create_service_app(state_metrics=...)`. Dashboards and alerts take `max` over replicas for these.

Metric names start with `corral_`; the exposition adds `_total` to counters.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):
    # Each metric opens its file there as it is defined below: the directory must exist first.
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
# `<name>_created` doubles the series of every counter for a figure no dashboard here reads.
disable_created_metrics()

# Seconds: API calls (most well under 100 ms) up to bulk writes and long merges.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Seconds an event waits between its write and its publication or handling.
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A per-process counter (multiprocess-safe). `name` without `_total`: the exposition adds it."""
    return Counter(name, documentation, list(labels))


def histogram(
    name: str, documentation: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
) -> Histogram:
    return Histogram(name, documentation, list(labels), buckets=tuple(buckets))


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A per-process gauge; under several workers the live workers' values are added up.

    Only for figures that are a process's own (connections it holds). Shared state is a StateMetric.
    """
    return Gauge(name, documentation, list(labels), multiprocess_mode="livesum")


# ---- the figures every process has -------------------------------------------------------------------

HTTP_REQUESTS = counter(
    "corral_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = histogram(
    "corral_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
)

DB_POOL_CONNECTIONS_OPEN = gauge(
    "corral_db_pool_connections_open", "Database connections the pool holds open"
)
DB_POOL_CONNECTIONS_IN_USE = gauge(
    "corral_db_pool_connections_in_use", "Database connections checked out of the pool by running work"
)
DB_POOL_CONNECTIONS_MAX = gauge(
    "corral_db_pool_connections_max", "The most connections the pool may open (pool size plus overflow)"
)

OUTBOX_EVENTS_WRITTEN = counter(
    "corral_outbox_events_written",
    "Events written to the transactional outbox (committed or not), by type",
    ["event_type"],
)
OUTBOX_MESSAGES_PUBLISHED = counter(
    "corral_outbox_messages_published",
    "Outbox messages published and confirmed by the broker, by event type",
    ["event_type"],
)
OUTBOX_EVENTS_PUBLISHED = counter(
    "corral_outbox_events_published",
    "Events published (a batch message carries many), by event type",
    ["event_type"],
)
OUTBOX_PUBLISH_LAG = histogram(
    "corral_outbox_publish_lag_seconds",
    "Time from an event's write in the outbox to the broker's confirmation",
    buckets=LAG_BUCKETS,
)
OUTBOX_RELAY_INTERRUPTIONS = counter(
    "corral_outbox_relay_interruptions",
    "Times the outbox relay lost the database or the broker and started again",
)

CONSUMER_MESSAGES = counter(
    "corral_consumer_messages",
    "Messages taken from a queue, by outcome (acked, retried, rejected)",
    ["queue", "outcome"],
)
CONSUMER_EVENTS = counter(
    "corral_consumer_events",
    "Events in consumed messages, by outcome (handled, duplicate, failed)",
    ["queue", "outcome"],
)
CONSUMER_REDELIVERIES = counter(
    "corral_consumer_redeliveries",
    "Messages the broker delivered again after a failed or unacknowledged try",
    ["queue"],
)
CONSUMER_LAG = histogram(
    "corral_consumer_lag_seconds",
    "Time from an event's creation to the end of its handling",
    ["queue"],
    buckets=LAG_BUCKETS,
)
CONSUMER_HANDLE_DURATION = histogram(
    "corral_consumer_handle_duration_seconds", "Time to handle one message (all its events)", ["queue"]
)

STATE_COLLECTION_FAILURES = counter(
    "corral_state_metric_failures",
    "Scrape-time figures that could not be read (database or broker unavailable)",
    ["metric"],
)


# ---- HTTP requests -----------------------------------------------------------------------------------

NOT_MEASURED_PATHS = frozenset({"/metrics", "/livez", "/readyz"})
UNMATCHED_ROUTE = "<unmatched>"


class RequestMetricsMiddleware:
    """Counts and times every request by route template, never by raw path (ids would explode the series).

    A handler that knows a better template (the gateway's routing table) sets `scope["state"]["route"]`.
    Probes and scrapes are left out: they are not traffic, and a not-ready 503 is not a server error.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NOT_MEASURED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        counted = False

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                route = route_template(scope)
                HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
                HTTP_REQUEST_DURATION.labels(scope["method"], route).observe(time.perf_counter() - started)

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the last byte leaves: a client that has its answer finds it counted.
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            count()


def route_template(scope: Scope) -> str:
    chosen = scope.get("state", {}).get("route")
    if chosen:
        return str(chosen)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE


# ---- database pool -----------------------------------------------------------------------------------


def watch_pool(engine: AsyncEngine) -> None:
    """Keeps the pool gauges current through the pool's own events (no polling, no lock)."""
    pool = engine.sync_engine.pool
    size = getattr(pool, "size", lambda: 0)()
    overflow = getattr(pool, "_max_overflow", 0)
    DB_POOL_CONNECTIONS_MAX.inc(size + max(overflow, 0))

    event.listen(pool, "connect", lambda *_: DB_POOL_CONNECTIONS_OPEN.inc())
    event.listen(pool, "close", lambda *_: DB_POOL_CONNECTIONS_OPEN.dec())
    event.listen(pool, "close_detached", lambda *_: DB_POOL_CONNECTIONS_OPEN.dec())
    event.listen(pool, "checkout", lambda *_: DB_POOL_CONNECTIONS_IN_USE.inc())
    event.listen(pool, "checkin", lambda *_: DB_POOL_CONNECTIONS_IN_USE.dec())


def forget_pool(engine: AsyncEngine) -> None:
    """Takes a disposed engine's capacity out of the gauges (tests build many engines in one process)."""
    pool = engine.sync_engine.pool
    DB_POOL_CONNECTIONS_MAX.dec(
        getattr(pool, "size", lambda: 0)() + max(getattr(pool, "_max_overflow", 0), 0)
    )


# ---- state read at scrape time -------------------------------------------------------------------------


class StateMetric(Protocol):
    """Figures read from shared state (database, broker) when Prometheus scrapes."""

    names: tuple[str, ...]

    async def collect(self, runtime: Any) -> Iterable[Metric]: ...


@dataclass(frozen=True)
class DatabaseGauge:
    """A gauge read by one SQL query on the service's own database at scrape time.

    The query returns one row per series: the label values in `labels` order, then the value. Series named
    in `expected` are reported as 0 when the query returns no row for them, so an alert on a figure that
    drops to nothing still has a series to look at.
    """

    name: str
    documentation: str
    sql: str
    labels: tuple[str, ...] = ()
    expected: tuple[tuple[str, ...], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    async def collect(self, runtime: Any) -> Iterable[Metric]:
        async with runtime.engine.connect() as conn:
            rows = (await conn.execute(text(self.sql))).all()
        values: dict[tuple[str, ...], float] = dict.fromkeys(self.expected, 0.0)
        for row in rows:
            key = tuple("" if v is None else str(v) for v in row[: len(self.labels)])
            values[key] = float(row[len(self.labels)] or 0)
        family = GaugeMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for key, value in values.items():
            family.add_metric(list(key), value)
        return [family]


@dataclass(frozen=True)
class OutboxBacklog:
    """Events written but not yet confirmed by the broker, and how long the oldest has waited."""

    names: tuple[str, ...] = (
        "corral_outbox_pending_messages",
        "corral_outbox_pending_events",
        "corral_outbox_oldest_pending_age_seconds",
    )

    async def collect(self, runtime: Any) -> Iterable[Metric]:
        async with runtime.engine.connect() as conn:
            messages, events, age = (
                await conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(event_count), 0), "
                        "coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) FROM outbox"
                    )
                )
            ).one()
        return [
            GaugeMetricFamily(
                self.names[0], "Outbox messages waiting to be published", value=float(messages)
            ),
            GaugeMetricFamily(
                self.names[1], "Events in outbox messages waiting to be published", value=float(events)
            ),
            GaugeMetricFamily(
                self.names[2],
                "Seconds the oldest unpublished outbox message has waited",
                value=max(float(age), 0.0),
            ),
        ]


@dataclass(frozen=True)
class ConsumerQueues:
    """Messages waiting in this service's queues and in the dead-letter queue, asked of the broker."""

    names: tuple[str, ...] = (
        "corral_consumer_queue_messages",
        "corral_consumer_queue_consumers",
        "corral_dead_letter_messages",
    )

    async def collect(self, runtime: Any) -> Iterable[Metric]:
        consumer = getattr(runtime, "consumer", None)
        if consumer is None:
            return []
        depths = await consumer.queue_depths()
        waiting = GaugeMetricFamily(self.names[0], "Messages ready in a consumer's queue", labels=["queue"])
        consumers = GaugeMetricFamily(self.names[1], "Consumers attached to a queue", labels=["queue"])
        for name, (messages, attached) in depths.queues.items():
            waiting.add_metric([name], float(messages))
            consumers.add_metric([name], float(attached))
        dead = GaugeMetricFamily(
            self.names[2], "Messages in the dead-letter queue (handling failed too often)", labels=["queue"]
        )
        dead.add_metric([depths.dead_letter_queue], float(depths.dead_letters))
        return [waiting, consumers, dead]


STANDARD_STATE_METRICS: tuple[StateMetric, ...] = (OutboxBacklog(), ConsumerQueues())


@dataclass
class MetricsExporter:
    """Renders `/metrics`: the per-process figures (every worker's, in multiprocess mode) plus state figures.

    State figures are read on every scrape (a few indexed counts; Prometheus scrapes every 15-30 s),
    each allowed `timeout` seconds, all at once.
    """

    state_metrics: Sequence[StateMetric] = ()
    timeout: float = 5.0

    async def render(self, runtime: Any) -> bytes:
        return process_metrics() + await self._state(runtime)

    async def _state(self, runtime: Any) -> bytes:
        results = await asyncio.gather(*(self._collect_one(m, runtime) for m in self.state_metrics))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families([family for families in results for family in families]))
        return generate_latest(registry)

    async def _collect_one(self, metric: StateMetric, runtime: Any) -> list[Metric]:
        try:
            return list(await asyncio.wait_for(metric.collect(runtime), timeout=self.timeout))
        except Exception as exc:  # noqa: BLE001 - one unreadable figure must not hide the others
            log.warning("state metric unavailable", metric=metric.names[0], error=repr(exc))
            STATE_COLLECTION_FAILURES.labels(metric.names[0]).inc()
            return []


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def process_metrics() -> bytes:
    """This process's figures, or every worker's added up when PROMETHEUS_MULTIPROC_DIR is set."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def metrics_response(body: bytes) -> Response:
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def metrics_endpoint(request: Request) -> Response:
    exporter: MetricsExporter = request.app.state.metrics
    return metrics_response(await exporter.render(request.app.state.runtime))


def mark_worker_gone() -> None:
    """A worker that stops takes its live gauges (pool connections) out of the multiprocess sum."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.mark_process_dead(os.getpid(), directory)


def prepare_multiprocess_dir(directory: str) -> None:
    """Empties the directory before the workers start: files of a previous run would be added in."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def exposed_names(families: Iterable[Any]) -> set[str]:
    """The sample names Prometheus sees for metric families (counters get `_total`, histograms three)."""
    suffixes: Mapping[str, tuple[str, ...]] = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
    }
    names = set()
    for family in families:
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names

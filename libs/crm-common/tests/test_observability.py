"""Metrics and traces of the shared kit: what every service exposes, workers added up, events traced."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from crm_common.app import create_service_app
from crm_common.cloudevents import CloudEvent
from crm_common.consumer import EventConsumer, Subscription
from crm_common.db import make_engine, make_sessionmaker, transaction
from crm_common.observability import tracing
from crm_common.outbox import OutboxRelay, add_event, add_events
from crm_common.settings import DEFAULT_AMQP_URL, BaseServiceSettings
from crm_common.testing import (
    TEST_QUEUE_EXPIRES_MS,
    Scrape,
    asgi_client,
    migrated_database,
    recording_spans,
    unique_exchange,
)
from fastapi import APIRouter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, multiprocess

ROOT = Path(__file__).resolve().parents[3]
# merge-svc's tree has the shared outbox/inbox tables, which is all these tests need.
SERVICE_DIR = ROOT / "services" / "merge-svc"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with migrated_database(SERVICE_DIR, "corral_observability_test") as url:
        yield url


def things_app(database_url: str):  # type: ignore[no-untyped-def]
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def read_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    settings = BaseServiceSettings(
        service_name="things",
        database_url=database_url,
        run_outbox_relay=False,
        run_consumers=False,
        log_level="WARNING",
    )
    return create_service_app(settings=settings, title="things", description="things", routers=[router])


async def test_requests_are_counted_by_route_template_and_the_outbox_backlog_is_read_from_the_database(
    database: str,
) -> None:
    app = things_app(database)
    async with asgi_client(app, account_id=7) as client:
        before = Scrape((await client.get("/metrics")).text)
        for thing in ("a1", "b2", "c3"):
            assert (await client.get(f"/things/{thing}")).status_code == 200
        assert (await client.get("/things/x", headers={"X-Corral-Auth": "forged"})).status_code == 401
        assert (await client.get("/livez")).status_code == 200

        engine = app.state.runtime.engine
        async with transaction(make_sessionmaker(engine)) as session:
            await add_events(
                session,
                [CloudEvent(source="things", type="thing.seen", corralaccount=7, data={}) for _ in range(5)],
            )
            await add_event(session, CloudEvent(source="things", type="thing.gone", corralaccount=7, data={}))
        response = await client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        after = Scrape(response.text)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("corral_http_requests_total", method="GET", route="/things/{thing_id}", status="200") == 3
    assert moved("corral_http_request_duration_seconds_count", route="/things/{thing_id}") == 3
    # A request refused before routing still counts, under one label value rather than its path.
    assert moved("corral_http_requests_total", route="<unmatched>", status="401") == 1
    assert not after.has("corral_http_requests_total", route="/livez")
    assert not [r for r in after.labels("corral_http_requests_total", "route") if "a1" in r or "b2" in r]

    # The backlog is the outbox table's content: the two rows (a batch of five, one single) nobody published.
    assert after.value("corral_outbox_pending_messages") == 2
    assert after.value("corral_outbox_pending_events") == 6
    assert after.value("corral_outbox_oldest_pending_age_seconds") >= 0
    assert moved("corral_outbox_events_written_total", event_type="thing.seen") == 5
    assert after.value("corral_db_pool_connections_max") >= app.state.runtime.settings.db_pool_size
    assert after.value("corral_db_pool_connections_open") >= 1


async def test_events_carry_the_trace_through_the_broker_and_dead_letters_are_counted(database: str) -> None:
    exchange = unique_exchange()
    engine = make_engine(database)
    sessions = make_sessionmaker(engine)
    handled: list[CloudEvent] = []

    async def record(session, event: CloudEvent) -> None:  # type: ignore[no-untyped-def]
        handled.append(event)

    async def refuse(session, event: CloudEvent) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot handle this one")

    with recording_spans() as spans:
        relay = OutboxRelay(
            database_url=database,
            amqp_url=DEFAULT_AMQP_URL,
            exchange=exchange,
            source="test",
            poll_interval=0.2,
        )
        consumer = EventConsumer(
            amqp_url=DEFAULT_AMQP_URL,
            exchange=exchange,
            sessionmaker=sessions,
            queue_expires_ms=TEST_QUEUE_EXPIRES_MS,
            subscriptions=[
                Subscription("test.recorder", ["thing.seen"], record),
                Subscription("test.refuser", ["thing.broken"], refuse, delivery_limit=1),
            ],
        )
        await consumer.start()
        await relay.start()
        try:
            with tracing.tracer("test").start_as_current_span("change things") as request_span:
                async with transaction(sessions) as session:
                    await add_events(
                        session,
                        [
                            CloudEvent(source="test", type="thing.seen", corralaccount=1, data={})
                            for _ in range(3)
                        ],
                    )
                    await add_event(
                        session, CloudEvent(source="test", type="thing.broken", corralaccount=1, data={})
                    )
            relay.wake()
            deadline = time.monotonic() + 30
            depths = await consumer.queue_depths()
            while (len(handled) < 3 or depths.dead_letters < 1) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                depths = await consumer.queue_depths()
        finally:
            await relay.stop()
            await consumer.stop()
            await engine.dispose()
        finished = spans.get_finished_spans()

    assert len(handled) == 3
    trace_id = request_span.get_span_context().trace_id
    # CloudEvents distributed-tracing extension: version-trace id-parent span id-flags.
    assert {e.traceparent.rsplit("-", 1)[0] for e in handled if e.traceparent} == {
        f"00-{trace_id:032x}-{request_span.get_span_context().span_id:016x}"
    }
    publish = [s for s in finished if s.name == "publish thing.seen"]
    process = [s for s in finished if s.name == "process thing.seen" and s.kind == SpanKind.CONSUMER]
    assert publish and publish[0].kind == SpanKind.PRODUCER
    assert process, [s.name for s in finished]
    for span in (*publish, *process):
        assert span.context.trace_id == trace_id
        assert span.parent is not None and span.parent.span_id == request_span.get_span_context().span_id
    # The subscriber's database work is part of the same trace.
    assert [
        s
        for s in finished
        if s.context.trace_id == trace_id
        and s.attributes.get("db.system") == "postgresql"
        and s.parent
        and s.parent.span_id == process[0].context.span_id
    ]
    # The refused event went to the dead-letter queue, and the broker says so.
    assert depths.dead_letters == 1
    assert depths.queues["test.refuser"][0] == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def per_worker_requests(directory: str) -> dict[str, float]:
    """Requests each worker counted, read from its own file in the multiprocess directory."""
    counts = {}
    for name in os.listdir(directory):
        if not name.startswith("counter_"):
            continue
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(os.path.join(directory, name), alone)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=alone)
            counts[name] = sum(
                s.value
                for family in registry.collect()
                for s in family.samples
                if s.name == "corral_http_requests_total"
            )
    return counts


@contextmanager
def merge_svc_process(database: str, logs: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """merge-svc as a process on a free port (its database has the shared tables only): URL and process."""
    port = free_port()
    environment = {
        **os.environ,
        "MERGE_SVC_PORT": str(port),
        "MERGE_SVC_DATABASE_URL": database,
        "CORRAL_EXCHANGE": unique_exchange(),
        "CORRAL_QUEUE_EXPIRES_MS": str(TEST_QUEUE_EXPIRES_MS),
        "CORRAL_LOG_LEVEL": "WARNING",
        "MERGE_SVC_RECONCILE_INTERVAL_SECONDS": "0",
        "CORRAL_ENV": "development",
        **env,
    }
    log_path = logs / "merge-svc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "merge-svc")],
            env=environment,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            yield url, process
        finally:
            os.killpg(process.pid, 15)
            process.wait(timeout=20)


async def test_several_workers_are_added_up_in_every_scrape(database: str, tmp_path: Path) -> None:
    import psutil

    metrics_dir = tmp_path / "metrics"
    with merge_svc_process(
        database, tmp_path, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    ) as (url, process):
        workers = [c for c in psutil.Process(process.pid).children() if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, "uvicorn runs two workers"
        sent = 0
        for _ in range(4):  # fresh connections, many at once
            async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as client:
                answers = await asyncio.gather(*(client.get(f"{url}/corral/v1/merges/1") for _ in range(50)))
            assert {a.status_code for a in answers} == {401}
            sent += len(answers)
        # The kernel may hand every connection above to one worker: another process counting the same
        # figure, as a third worker would, shows the scrape adds up processes rather than report its own.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from crm_common.observability.metrics import HTTP_REQUESTS; "
                "HTTP_REQUESTS.labels('GET', '<unmatched>', '401').inc(77)",
            ],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
            check=True,
            timeout=60,
        )
        counted = per_worker_requests(str(metrics_dir))
        assert sum(counted.values()) == sent + 77 and len([n for n in counted.values() if n]) >= 2, counted
        for _ in range(6):
            scrape = Scrape(httpx.get(f"{url}/metrics", timeout=5).text)
            assert scrape.value("corral_http_requests_total", route="<unmatched>", status="401") == sent + 77


class OtlpReceiver:
    """A tiny OTLP/HTTP collector: keeps the spans services export to /v1/traces."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from threading import Thread

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        received: list[tuple[str, str, int]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                export = ExportTraceServiceRequest()
                export.ParseFromString(body)
                for resource_spans in export.resource_spans:
                    service = next(
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    )
                    for scope_spans in resource_spans.scope_spans:
                        received.extend((service, s.name, s.kind) for s in scope_spans.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_spans_are_exported_over_otlp_only_when_an_endpoint_is_set(database: str, tmp_path: Path) -> None:
    assert tracing.active_provider() is None, "no endpoint in this process's environment: tracing is off"
    app = things_app(database)
    assert not [m for m in app.user_middleware if "OpenTelemetry" in str(m.cls)], "nothing installed when off"

    receiver = OtlpReceiver()
    try:
        with merge_svc_process(
            database, tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100"
        ) as (url, _):
            assert httpx.get(f"{url}/corral/v1/merges/7", timeout=5).status_code == 401
            deadline = time.monotonic() + 20
            while not any(name.startswith("GET /corral/v1/merges") for _, name, _ in receiver.received):
                assert time.monotonic() < deadline, receiver.received
                time.sleep(0.1)
    finally:
        receiver.close()
    services = {service for service, _, _ in receiver.received}
    assert services == {"merge-svc"}
    # Readiness probes and scrapes are not traced.
    assert not [name for _, name, _ in receiver.received if "readyz" in name or "metrics" in name]


def test_log_lines_carry_the_trace_and_span_ids(capsys: pytest.CaptureFixture[str]) -> None:
    import json as jsonlib

    import structlog
    from crm_common.logging import configure_logging

    # configure_logging binds the current sys.stderr, which capsys closes after this test: the process's
    # configuration is put back, or every later log line in this worker (the outbox relay's) would raise.
    before = structlog.get_config()
    configure_logging("things", "INFO", json_output=True)
    try:
        logger = structlog.get_logger("test.trace-ids")
        with recording_spans():
            with tracing.tracer("test").start_as_current_span("work") as span:
                logger.info("inside a span")
            logger.info("outside any span")
    finally:
        structlog.configure(**before)
    inside, outside = (jsonlib.loads(line) for line in capsys.readouterr().err.strip().splitlines()[-2:])
    assert inside["event"] == "inside a span"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert outside["event"] == "outside any span" and "trace_id" not in outside

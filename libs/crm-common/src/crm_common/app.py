"""The service application factory: one place that wires logging, ids, auth, errors, health and events."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aio_pika
import orjson
import structlog
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_common.auth import AUTH_HEADER, REQUEST_ID_HEADER, InvalidAuthContext, verify_context
from crm_common.consumer import EventConsumer, Subscription
from crm_common.db import make_engine, make_sessionmaker
from crm_common.errors import error_body, install_error_handlers
from crm_common.health import health_router
from crm_common.inputs import TextGuardMiddleware, document_refusals
from crm_common.logging import configure_logging, set_request_id
from crm_common.observability import metrics, tracing
from crm_common.outbox import OutboxRelay
from crm_common.responses import FastJSONResponse
from crm_common.settings import BaseServiceSettings

log = structlog.get_logger(__name__)

UNAUTHENTICATED_PATHS = frozenset({"/livez", "/readyz", "/openapi.json", "/docs", "/metrics"})


R = TypeVar("R")


@dataclass
class ServiceRuntime(Generic[R]):
    """Resources built in the lifespan and handed to routes through `request.app.state.runtime`."""

    settings: BaseServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    relay: OutboxRelay | None = None
    consumer: EventConsumer | None = None
    broker: aio_pika.abc.AbstractRobustConnection | None = None
    # The service's own resources (its clients and workers), one typed dataclass per service built by its
    # startup hook; routes reach them through the Annotated dependencies of the service's `api/deps.py`.
    resources: R | None = None


class RequestContextMiddleware:
    """Binds the request id and verifies the signed auth context before any route runs."""

    def __init__(self, app: ASGIApp, *, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # HubSpot serves `/search/` as `/search`; so do we, instead of a redirect to our own address.
            scope = {**scope, "path": path.rstrip("/") or "/"}
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = set_request_id(headers.get(REQUEST_ID_HEADER))
        state = scope.setdefault("state", {})
        path = scope["path"]
        if path not in UNAUTHENTICATED_PATHS:
            raw = headers.get(AUTH_HEADER)
            if raw is None:
                await _send_json(send, 401, error_body(401, "Requests must come through the gateway: the "
                                                       "internal auth context is missing",
                                                       category="INVALID_AUTHENTICATION"), request_id)
                return
            try:
                state["auth"] = verify_context(raw, self.secret)
            except InvalidAuthContext as exc:
                await _send_json(send, 401, error_body(401, f"Invalid internal auth context: {exc}",
                                                       category="INVALID_AUTHENTICATION"), request_id)
                return

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _send_json(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    payload = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", request_id.encode())],
    })
    await send({"type": "http.response.body", "body": payload})


StartupHook = Callable[[ServiceRuntime], Awaitable[None]]


def create_service_app(
    *,
    settings: BaseServiceSettings,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    subscriptions: Sequence[Subscription] = (),
    on_startup: Sequence[StartupHook] = (),
    on_shutdown: Sequence[StartupHook] = (),
    state_metrics: Sequence[metrics.StateMetric] = (),
    version: str = "0.1.0",
) -> FastAPI:
    """`state_metrics`: the service's figures read from its database or broker when scraped
    (`crm_common.observability.metrics`); the outbox backlog and the consumers' queues are always there."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                             pre_ping=settings.db_pool_pre_ping)
        metrics.watch_pool(engine)
        runtime = ServiceRuntime(settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine))
        app.state.runtime = runtime
        try:
            runtime.broker = await aio_pika.connect_robust(settings.amqp_url)
        except Exception as exc:  # readiness reports it; the service still serves what needs no broker
            log.warning("broker unavailable at startup", error=repr(exc))
        if settings.run_outbox_relay:
            runtime.relay = OutboxRelay(
                database_url=settings.database_url,
                amqp_url=settings.amqp_url,
                exchange=settings.exchange,
                source=settings.service_name,
            )
            await runtime.relay.start()
        if settings.run_consumers and subscriptions:
            runtime.consumer = EventConsumer(
                amqp_url=settings.amqp_url,
                exchange=settings.exchange,
                sessionmaker=runtime.sessionmaker,
                subscriptions=subscriptions,
                queue_expires_ms=settings.queue_expires_ms,
            )
            await runtime.consumer.start()
        for hook in on_startup:
            await hook(runtime)
        log.info("service started", port=settings.port)
        try:
            yield
        finally:
            for hook in on_shutdown:
                with contextlib.suppress(Exception):
                    await hook(runtime)
            if runtime.consumer:
                await runtime.consumer.stop()
            if runtime.relay:
                await runtime.relay.stop()
            if runtime.broker:
                with contextlib.suppress(Exception):
                    await runtime.broker.close()
            metrics.forget_pool(engine)
            await engine.dispose()
            tracing.shutdown(tracer_provider)
            metrics.mark_worker_gone()

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        docs_url="/docs",
        redoc_url=None,
        # Trailing slashes are removed before routing (RequestContextMiddleware); a redirect would point the
        # client at the service's internal address.
        redirect_slashes=False,
    )
    install_error_handlers(app)
    app.add_middleware(TextGuardMiddleware, max_json_bytes=settings.max_json_body_bytes)
    # Outermost: a request without a valid auth context is refused before its body is read.
    app.add_middleware(RequestContextMiddleware, secret=settings.internal_secret)
    # Outermost: the figures count every answer, the auth refusals included.
    app.add_middleware(metrics.RequestMetricsMiddleware)
    tracer_provider = tracing.instrument_app(app, settings.service_name)
    app.state.metrics = metrics.MetricsExporter(state_metrics=[*metrics.STANDARD_STATE_METRICS, *state_metrics])
    # Not through the gateway (it routes no /metrics) and not in the public OpenAPI document.
    app.add_route("/metrics", metrics.metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.include_router(health_router)
    for router in routers:
        app.include_router(router)
    document_refusals(app)
    return app

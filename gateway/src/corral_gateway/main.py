"""Corral gateway: application factory and entry points."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson
import structlog
from crm_common import cli
from crm_common.auth import REQUEST_ID_HEADER
from crm_common.db import make_engine
from crm_common.errors import install_error_handlers
from crm_common.logging import configure_logging, set_request_id
from crm_common.observability import metrics, tracing
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral_gateway import health
from corral_gateway.metrics import MetricsListener
from corral_gateway.openapi import OpenAPIMerger
from corral_gateway.proxy import PROXY_METHODS, proxy
from corral_gateway.ratelimit import LocalRateLimiter, SharedRateLimiter, postgres_leases
from corral_gateway.runtime import GatewayRuntime
from corral_gateway.settings import GATEWAY_DIR, GatewaySettings
from corral_gateway.tokens import TokenCache

log = structlog.get_logger("corral_gateway.access")

# A client's own request id is kept only if it cannot break a log line or a header.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")


class AccessMiddleware:
    """Request id in (client's if sane, else new), out on every response, and one access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == REQUEST_ID_HEADER.encode()),
                       None)
        request_id = set_request_id(offered if offered and SANE_REQUEST_ID.fullmatch(offered) else None)
        structlog.contextvars.bind_contextvars(service="gateway")
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                account_id=scope.get("state", {}).get("account_id"),
            )


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        metrics.watch_pool(engine)
        listener = MetricsListener(host=settings.host, port=settings.metrics_port)
        listener.start()
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                                  write=settings.write_timeout, pool=settings.pool_timeout),
            limits=httpx.Limits(max_connections=settings.max_connections,
                                max_keepalive_connections=settings.max_keepalive_connections,
                                keepalive_expiry=settings.keepalive_expiry),
            follow_redirects=False,
        )
        tokens = TokenCache(engine, ttl=settings.token_cache_ttl_seconds,
                            touch_interval=settings.last_used_interval_seconds)
        app.state.runtime = GatewayRuntime(
            settings=settings, engine=engine, client=client, tokens=tokens,
            limiter=SharedRateLimiter(postgres_leases(engine)) if settings.shared_rate_limits else LocalRateLimiter(),
            openapi=OpenAPIMerger(client=client, backends=settings.backend_urls(),
                                  ttl=settings.openapi_cache_seconds, timeout=settings.readyz_timeout),
            backend_urls={name: httpx.URL(url) for name, url in settings.backend_urls().items()},
        )
        log.info("gateway started", port=settings.port, backends=settings.backend_urls())
        try:
            yield
        finally:
            await listener.stop()
            await tokens.aclose()
            await client.aclose()
            metrics.forget_pool(engine)
            await engine.dispose()
            tracing.shutdown(tracer_provider)
            metrics.mark_worker_gone()

    # FastAPI's own docs are off: /openapi.json and /docs serve the merged public document instead.
    app = FastAPI(title="Corral gateway", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.add_middleware(AccessMiddleware)
    tracer_provider = tracing.instrument_app(app, settings.service_name)
    app.include_router(health.router)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> Response:
        document = await request.app.state.runtime.openapi.document()
        return Response(orjson.dumps(document), media_type="application/json")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Corral API")

    app.router.add_route("/{path:path}", proxy, methods=PROXY_METHODS, include_in_schema=False)
    return app


def run() -> None:
    cli.serve(create_app, GatewaySettings())  # type: ignore[arg-type]


def migrate() -> None:
    cli.migrate(GATEWAY_DIR, GatewaySettings())

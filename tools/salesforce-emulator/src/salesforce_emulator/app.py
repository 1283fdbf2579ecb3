"""The FastAPI application: routers, Salesforce-shaped errors and the API gate every data call passes."""

from __future__ import annotations

import asyncio

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salesforce_emulator.api import admin, bulk, composite, data, oauth
from salesforce_emulator.api.common import JSON_MEDIA_TYPE, error_response, json_response
from salesforce_emulator.api.composite import SUBREQUEST_HEADER
from salesforce_emulator.clock import http_date
from salesforce_emulator.errors import OAuthError, SalesforceError, invalid_session
from salesforce_emulator.org import Org
from salesforce_emulator.settings import EmulatorSettings
from salesforce_emulator.store import allow_duplicates

DATA_PREFIX = "/services/data/v"


class ApiGate:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path). For every request it drops a
    trailing slash (Salesforce accepts both and a redirect would break PATCH/POST) and stamps
    `Sforce-Limit-Info` on the response. For data calls it first authenticates the bearer token, applies
    scheduled faults, and enforces and counts the daily API allowance."""

    def __init__(self, app: ASGIApp, org: Org) -> None:
        self.app = app
        self.org = org

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        if not path.startswith(DATA_PREFIX):
            await self.app(scope, receive, self._with_limit_info(send))
            return
        org = self.org
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode()
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        session = org.connected_app.session_for(token) if token else None
        if session is None:
            await self._reply(scope, receive, send, error_response(invalid_session()))
            return
        scope.setdefault("state", {})["sf_session"] = session
        duplicate_header = headers.get(b"sforce-duplicate-rule-header", b"").lower().replace(b" ", b"")
        is_subrequest = headers.get(SUBREQUEST_HEADER.encode(), b"").decode() == org.subrequest_secret
        if not is_subrequest:
            for fault in org.faults.take(scope["method"], path):
                if fault.kind == "LATENCY":
                    await asyncio.sleep(fault.latency_ms / 1000)
                    continue
                error = fault.error()
                if error is not None:
                    await self._reply(scope, receive, send, error_response(error))
                    return
            if org.usage.exhausted():
                await self._reply(scope, receive, send, error_response(
                    SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")))
                return
            org.usage.record(token, session.client_id)
        # Reset afterwards: in-process clients (ASGITransport) run many requests in one task.
        duplicates_token = allow_duplicates.set(b"allowsave=true" in duplicate_header)
        try:
            await self.app(scope, receive, self._with_limit_info(send))
        finally:
            allow_duplicates.reset(duplicates_token)

    def limit_info(self) -> bytes:
        org = self.org
        value = f"api-usage={org.usage.used()}/{org.usage.daily_max}"
        if org.settings.per_app_api_requests:
            app_used = org.usage.per_client.get(org.connected_app.client_id, 0)
            value += f";per-app-api-usage={app_used}/{org.settings.per_app_api_requests}" \
                     f"(appName={org.settings.app_name})"
        return value.encode()

    def _with_limit_info(self, send: Send) -> Send:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                # `Date` from the org's clock (uvicorn's own is turned off): clients that take the org's
                # time from its answers, as Corral's sync does for its first watermark, follow a moved clock.
                message = dict(message, headers=[*message.get("headers", []),
                                                 (b"sforce-limit-info", self.limit_info()),
                                                 (b"date", http_date(self.org.clock.now()).encode())])
            await send(message)

        return send_with_header

    async def _reply(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        await response(scope, receive, self._with_limit_info(send))


def create_app(settings: EmulatorSettings | None = None) -> FastAPI:
    settings = settings or EmulatorSettings()
    org = Org(settings)
    app = FastAPI(title="Salesforce REST API emulator", version="0.1.0", openapi_url=None, docs_url=None,
                  redoc_url=None)
    app.state.org = org
    app.state.settings = settings

    @app.exception_handler(SalesforceError)
    async def salesforce_error(request: Request, error: SalesforceError) -> Response:
        return error_response(error)

    @app.exception_handler(OAuthError)
    async def oauth_error(request: Request, error: OAuthError) -> Response:
        return json_response({"error": error.error, "error_description": error.description}, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 405:
            return json_response([{"errorCode": "METHOD_NOT_ALLOWED",
                                   "message": f"HTTP Method '{request.method}' not allowed."}], 405)
        return json_response([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
                             error.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        # Routes read their own bodies, so this only fires for malformed path or query parameters.
        return json_response([{"errorCode": "MALFORMED_REQUEST",
                               "message": orjson.dumps(error.errors(), default=str).decode()}], 400)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> Response:
        # Clients parse every error body as Salesforce's list shape, so even a bug answers in it.
        return json_response([{"errorCode": "UNKNOWN_EXCEPTION", "message": f"An unexpected error occurred: "
                                                                           f"{type(error).__name__}: {error}"}], 500)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON_MEDIA_TYPE)

    app.include_router(oauth.router)
    app.include_router(data.router)
    app.include_router(composite.router)
    app.include_router(bulk.router)
    if settings.enable_admin:
        app.include_router(admin.router)
    app.add_middleware(ApiGate, org=org)
    return app

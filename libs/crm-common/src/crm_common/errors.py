"""HubSpot's error body everywhere, with the right status.

`{"status":"error","message","correlationId","category","subCategory"?,"errors":[...],"context"?,"links"?}`
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common.logging import current_request_id
from crm_common.responses import FastJSONResponse

log = structlog.get_logger(__name__)

CATEGORY_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "VALIDATION_ERROR",
    409: "CONFLICT",
    413: "VALIDATION_ERROR",
    414: "VALIDATION_ERROR",
    415: "VALIDATION_ERROR",
    422: "VALIDATION_ERROR",
    423: "LOCKED",
    429: "RATE_LIMITS",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


class ErrorDetail(BaseModel):
    message: str
    code: str | None = None
    in_: str | None = Field(default=None, alias="in")
    subCategory: str | None = None
    context: dict[str, list[str]] | None = None


class ErrorBody(BaseModel):
    """The documented error body; declared in every service's OpenAPI for every error status."""

    status: str = "error"
    message: str
    correlationId: str
    category: str
    subCategory: str | None = None
    errors: list[ErrorDetail] | None = None
    context: dict[str, Any] | None = None
    links: dict[str, str] | None = None


class HubSpotError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: str | None = None,
        sub_category: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        context: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category or CATEGORY_BY_STATUS.get(status, "ERROR")
        self.sub_category = sub_category
        self.errors = errors
        self.context = context
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return error_body(
            self.status,
            self.message,
            category=self.category,
            sub_category=self.sub_category,
            errors=self.errors,
            context=self.context,
            extra=self.extra,
        )


def error_body(
    status: int,
    message: str,
    *,
    category: str | None = None,
    sub_category: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    context: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": current_request_id(),
        "category": category or CATEGORY_BY_STATUS.get(status, "ERROR"),
    }
    if sub_category:
        body["subCategory"] = sub_category
    if errors:
        body["errors"] = errors
    if context:
        body["context"] = context
    if extra:
        body.update(extra)
    return body


def validation_error(message: str, *, property_name: str | None = None, code: str | None = None,
                     errors: list[dict[str, Any]] | None = None) -> HubSpotError:
    if errors is None and property_name is not None:
        detail: dict[str, Any] = {"message": message, "context": {"propertyName": [property_name]}}
        if code:
            detail["code"] = code
        errors = [detail]
    return HubSpotError(400, message, category="VALIDATION_ERROR", errors=errors)


def not_found(message: str = "resource not found") -> HubSpotError:
    return HubSpotError(404, message, category="OBJECT_NOT_FOUND")


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "body"
        path = ".".join(loc[1:]) if len(loc) > 1 else where
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            msg = f"Invalid input JSON: {ctx.get('error', err.get('msg'))}"
            details.append({"message": msg, "code": "INVALID_JSON", "in": "body"})
            continue
        details.append({"message": f"{path}: {err.get('msg')}", "in": path, "code": str(err.get("type", "")).upper()})
    if details and details[0].get("code") == "INVALID_JSON":
        return details[0]["message"], details
    summary = "; ".join(d["message"] for d in details) or "Invalid input"
    return f"Invalid input: {summary}", details


# Deadlock, serialization failure: the transaction lost a race with another writer and can run again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure, raised by asyncpg directly (COPY) or wrapped by SQLAlchemy."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in TRANSIENT_SQLSTATES:
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False


def unexpected_error_response(exc: Exception) -> FastJSONResponse:
    if is_transient_conflict(exc):
        # A concurrent request wrote the same records first; nothing of this one was kept.
        log.warning("request lost a race with a concurrent write", error=repr(exc))
        return FastJSONResponse(error_body(409, "A concurrent request was writing the same records; nothing "
                                                "was changed by this one: retry it", category="CONFLICT"),
                                status_code=409, headers={"Retry-After": "1"})
    log.exception("unhandled error", error=repr(exc))
    return FastJSONResponse(error_body(500, "internal error", category="INTERNAL_ERROR"), status_code=500)


class UnhandledErrorMiddleware:
    """Answers an exception no handler took in HubSpot's body, and keeps the connection open.

    Starlette sends an `Exception` handler's answer from its outermost middleware and then re-raises, so
    the server closes the connection; a proxy that pooled it (the gateway) could hand it to the next
    request, of another account, which then failed. Caught here, inside that middleware, the error ends
    with its own request. Once a response has started (a stream broke off) nothing can be sent any more,
    so the exception goes on and the server closes the connection, which is then the only honest signal.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            await unexpected_error_response(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HubSpotError)
    async def _hubspot_error(_: Request, exc: HubSpotError) -> FastJSONResponse:
        return FastJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    from crm_common.contracts.base import ServiceCallError  # the contracts build on this module

    @app.exception_handler(ServiceCallError)
    async def _service_call(_: Request, exc: ServiceCallError) -> FastJSONResponse:
        # A call to another service that no route translated: a refusal passes through, an outage is ours.
        translated = exc.to_hubspot()
        return FastJSONResponse(translated.body(), status_code=translated.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        message, details = _describe_validation(exc)
        return FastJSONResponse(error_body(400, message, errors=details), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = "The requested resource was not found"
        if exc.status_code == 405:
            message = "Method not allowed for this resource"
        return FastJSONResponse(error_body(exc.status_code, message), status_code=exc.status_code,
                              headers=getattr(exc, "headers", None))

    # Errors raised by a middleware outside UnhandledErrorMiddleware still get HubSpot's body.
    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> FastJSONResponse:
        return unexpected_error_response(exc)

    app.add_middleware(UnhandledErrorMiddleware)


# Every route declares these so the OpenAPI lists every status a client can get.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Invalid input",
        401: "Missing or invalid credentials",
        403: "Missing scopes",
        404: "Not found",
        409: "Conflict",
        413: "Payload too large",
        414: "Merge limit reached",
        415: "Unsupported media type",
        423: "Locked",
        429: "Rate limited",
    }
    return {s: {"model": ErrorBody, "description": descriptions.get(s, "Error")} for s in statuses}

"""The catch-all handler: authenticate, rate-limit, route, check scopes, then stream to the backend."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import structlog
from crm_common.auth import AUTH_HEADER, REQUEST_ID_HEADER, AuthContext, sign_context
from crm_common.logging import current_request_id
from crm_common.observability.metrics import UNMATCHED_ROUTE
from opentelemetry import trace
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from corral_gateway import errors
from corral_gateway.metrics import REJECTIONS, UPSTREAM_DURATION, UPSTREAM_FAILURES
from corral_gateway.routing import Resolution, resolve, split_path
from corral_gateway.scopes import granted
from corral_gateway.runtime import GatewayRuntime
from corral_gateway.tokens import TokenRecord

log = structlog.get_logger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, plus what the gateway itself owns on each side.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
DROP_FROM_CLIENT = HOP_BY_HOP | {"host", "authorization", "expect", AUTH_HEADER, REQUEST_ID_HEADER}
DROP_FROM_UPSTREAM = HOP_BY_HOP | {"date", "server", REQUEST_ID_HEADER}

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _filter_headers(raw: list[tuple[bytes, bytes]], drop: frozenset[str] | set[str]) -> list[tuple[bytes, bytes]]:
    listed = {
        name.strip().lower()
        for key, value in raw if key.lower() == b"connection"
        for name in value.decode("latin-1").split(",")
    }
    return [(k, v) for k, v in raw if (name := k.decode("latin-1").lower()) not in drop and name not in listed]


def _bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def proxy(request: Request) -> Response:
    runtime: GatewayRuntime = request.app.state.runtime
    settings = runtime.settings
    path: str = request.scope["path"]
    resolution = resolve(request.method, path)
    _name_route(request, resolution.pattern if resolution else UNMATCHED_ROUTE)
    if split_path(path) is None:  # /internal/... and dot segments: never exposed, not even to tokens
        return _rejected("no_route", errors.not_found())

    token = _bearer_token(request)
    if token is None:
        return _rejected("unauthenticated", errors.unauthorized(
            errors.HAPIKEY_GONE if "hapikey" in request.query_params else errors.AUTH_NOT_FOUND))
    try:
        record = await runtime.tokens.lookup(token)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        log.error("token store unavailable", error=repr(exc))
        return _rejected("auth_store_unavailable", errors.error_response(
            503, "The authentication store is unavailable; retry shortly.",
            category="SERVICE_UNAVAILABLE", headers={"Retry-After": "1"}))
    if record is None:
        return _rejected("invalid_token", errors.unauthorized(errors.INVALID_TOKEN))
    if record.revoked_at is not None:
        return _rejected("revoked_token", errors.revoked(max(0, (datetime.now(UTC) - record.revoked_at).days)))
    request.scope.setdefault("state", {})["account_id"] = record.account_id
    structlog.contextvars.bind_contextvars(account_id=record.account_id, token_id=record.id)

    # Every authenticated call counts, as at HubSpot, errors included.
    decision = await runtime.limiter.hit(
        record.id,
        per_10s=settings.rate_limit_per_10s if record.rate_limit_per_10s is None else record.rate_limit_per_10s,
        daily=settings.daily_limit if record.daily_limit is None else record.daily_limit,
    )
    if not decision.allowed:
        assert decision.policy is not None
        return _rejected("rate_limited", errors.rate_limited(decision.policy, decision.headers))

    if resolution is None:
        return _rejected("no_route", errors.not_found(decision.headers))
    held = granted(record.scopes)
    missing = [s for s in resolution.required_scopes if s not in held]
    if missing:
        return _rejected("missing_scopes", errors.missing_scopes(missing, decision.headers))
    return await _forward(request, runtime, resolution, record, decision.headers)


def _name_route(request: Request, pattern: str) -> None:
    """Metrics and the server span name the route by the routing table's pattern, not the raw path."""
    request.scope.setdefault("state", {})["route"] = pattern
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{request.method} {pattern}")
        span.set_attribute("http.route", pattern)


def _rejected(reason: str, response: Response) -> Response:
    REJECTIONS.labels(reason).inc()
    return response


async def _forward(request: Request, runtime: GatewayRuntime, resolution: Resolution, record: TokenRecord,
                   extra_headers: dict[str, str]) -> Response:
    backend = resolution.backend
    settings = runtime.settings
    scope = request.scope
    headers = _filter_headers(list(scope["headers"]), DROP_FROM_CLIENT)
    context = AuthContext(account_id=record.account_id, scopes=list(record.scopes), token_id=record.id)
    headers.append((AUTH_HEADER.encode(), sign_context(context, runtime.settings.internal_secret).encode()))
    headers.append((REQUEST_ID_HEADER.encode(), current_request_id().encode()))
    client_host = scope.get("client")[0] if scope.get("client") else None
    if client_host:
        prior = request.headers.get("x-forwarded-for")
        forwarded = f"{prior}, {client_host}" if prior else client_host
        headers = [(k, v) for k, v in headers if k.lower() != b"x-forwarded-for"]
        headers.append((b"x-forwarded-for", forwarded.encode("latin-1")))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if "host" in request.headers:  # so a service can build public URLs (e.g. Location)
        headers = [(k, v) for k, v in headers if k.lower() != b"x-forwarded-host"]
        headers.append((b"x-forwarded-host", request.headers["host"].encode("latin-1")))

    has_body = "transfer-encoding" in request.headers or request.headers.get("content-length", "0") != "0"
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    url = runtime.backend_urls[backend].copy_with(raw_path=raw_path + (b"?" + query if query else b""))
    repeatable = resolution.repeatable
    content: bytes | AsyncIterator[bytes] | None = None
    if has_body:
        length = request.headers.get("content-length", "")
        if repeatable and length.isdigit() and int(length) <= settings.replayable_body_bytes:
            content = await request.body()  # small, and kept: a retry sends it again
        else:
            # Streamed chunk by chunk as the client sends it: never held in memory, and so never sent twice.
            content, repeatable = request.stream(), False
    name = f"{backend} service"
    started = time.perf_counter()
    attempts = 1 + (settings.stale_connection_retries if repeatable else 0)
    for attempt in range(1, attempts + 1):
        upstream_request = runtime.client.build_request(request.method, url, headers=headers, content=content)
        try:
            upstream = await runtime.client.send(upstream_request, stream=True)
            break
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            UPSTREAM_FAILURES.labels(backend, "unavailable").inc()
            log.warning("backend unavailable", backend=backend, error=repr(exc))
            return errors.error_response(503, f"The {name} is unavailable; retry shortly.",
                                         category="SERVICE_UNAVAILABLE", headers=extra_headers)
        except httpx.TimeoutException as exc:
            UPSTREAM_FAILURES.labels(backend, "timeout").inc()
            log.warning("backend timed out", backend=backend, error=repr(exc))
            return errors.error_response(504, f"The {name} did not answer in time.",
                                         category="GATEWAY_TIMEOUT", headers=extra_headers)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            # A pooled connection the service closed (a restart, an idle timeout) fails the request before
            # any answer. A read or an idempotent write may go again on another connection (RFC 9110 9.2.2).
            if attempt < attempts:
                UPSTREAM_FAILURES.labels(backend, "dropped_retried").inc()
                log.info("backend connection dropped; sending again", backend=backend, attempt=attempt,
                         error=repr(exc))
                continue
            failure: httpx.TransportError = exc
        except httpx.TransportError as exc:
            failure = exc
        UPSTREAM_FAILURES.labels(backend, "broken").inc()
        log.warning("backend connection failed", backend=backend, error=repr(failure))
        return errors.error_response(502, f"The {name} closed the connection unexpectedly.",
                                     category="BAD_GATEWAY", headers=extra_headers)
    UPSTREAM_DURATION.labels(backend).observe(time.perf_counter() - started)

    headers_out = _filter_headers(upstream.headers.raw, DROP_FROM_UPSTREAM) + [
        (k.lower().encode(), v.encode()) for k, v in extra_headers.items()
    ]
    length = upstream.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= settings.buffer_response_bytes:
        # Most API answers are a few hundred bytes: one read beats a streaming task per response.
        try:
            # Raw bytes: a compressed body passes through untouched, matching its content-length.
            content = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except httpx.TransportError as exc:
            UPSTREAM_FAILURES.labels(backend, "broken").inc()
            log.warning("backend connection failed mid-response", backend=backend, error=repr(exc))
            return errors.error_response(502, f"The {name} closed the connection unexpectedly.",
                                         category="BAD_GATEWAY", headers=extra_headers)
        finally:
            await upstream.aclose()
        small = Response(content=content, status_code=upstream.status_code)
        small.raw_headers = headers_out
        return small

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():  # raw: content-encoding passes through untouched
                yield chunk
        finally:
            await upstream.aclose()

    response = StreamingResponse(body(), status_code=upstream.status_code,
                                 background=BackgroundTask(upstream.aclose))
    response.raw_headers = headers_out
    return response

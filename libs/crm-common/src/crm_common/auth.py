"""Signed internal auth context: who is asking, for which account, with which scopes.

The gateway authenticates the public bearer token and forwards the result in `X-Corral-Auth`,
signed with HMAC-SHA256 over a shared secret. Services trust only that header, so a request that
bypasses the gateway (or forges an account) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Annotated

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel, Field

from crm_common.errors import HubSpotError

AUTH_HEADER = "x-corral-auth"
REQUEST_ID_HEADER = "x-request-id"
MAX_CLOCK_SKEW_SECONDS = 300


class AuthContext(BaseModel):
    account_id: int
    scopes: list[str] = Field(default_factory=list)
    token_id: int | None = None
    # "gateway" for public requests, a service name for service-to-service calls.
    caller: str = "gateway"
    issued_at: int = Field(default_factory=lambda: int(time.time()))

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "*" in self.scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def sign_context(context: AuthContext, secret: str) -> str:
    payload = _b64(orjson.dumps(context.model_dump()))
    signature = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}"


def verify_context(header: str, secret: str, *, now: float | None = None) -> AuthContext:
    try:
        payload, signature = header.split(".", 1)
    except ValueError as exc:
        raise InvalidAuthContext("malformed internal auth header") from exc
    expected = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature):
        raise InvalidAuthContext("internal auth signature does not match")
    try:
        context = AuthContext.model_validate(orjson.loads(_unb64(payload)))
    except Exception as exc:
        raise InvalidAuthContext("internal auth payload is not valid") from exc
    current = time.time() if now is None else now
    if abs(current - context.issued_at) > MAX_CLOCK_SKEW_SECONDS:
        raise InvalidAuthContext("internal auth context expired")
    return context


class InvalidAuthContext(Exception):
    pass


def require_auth(request: Request) -> AuthContext:
    """FastAPI dependency: the verified context, or 401 in HubSpot's error shape."""
    context = getattr(request.state, "auth", None)
    if context is None:
        raise HubSpotError(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
            "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            category="INVALID_AUTHENTICATION",
        )
    return context


Auth = Annotated[AuthContext, Depends(require_auth)]


def require_scope(context: AuthContext, scope: str) -> None:
    if not context.has_scope(scope):
        raise HubSpotError(
            403,
            "This app hasn't been granted all required scopes to make this call. Read more about required "
            "scopes here: https://developers.hubspot.com/scopes.",
            category="MISSING_SCOPES",
            errors=[{"message": "One or more of the following scopes are required.",
                     "context": {"requiredGranularScopes": [scope]}}],
        )

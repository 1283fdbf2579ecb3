"""The gateway's own answers, all in HubSpot's error body."""

from __future__ import annotations

from crm_common.errors import error_body
from crm_common.logging import current_request_id
from starlette.responses import JSONResponse

AUTH_NOT_FOUND = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
INVALID_TOKEN = (
    "The access token provided is invalid. Create a token with `corral token create` and send it "
    "as `Authorization: Bearer <token>`."
)
HAPIKEY_GONE = (
    "API keys (hapikey) are not supported; HubSpot retired them. Send a private app access token as "
    "`Authorization: Bearer <token>`."
)


def error_response(status: int, message: str, *, category: str | None = None,
                   headers: dict[str, str] | None = None, **kwargs: object) -> JSONResponse:
    return JSONResponse(error_body(status, message, category=category, **kwargs),  # type: ignore[arg-type]
                          status_code=status, headers=headers)


def unauthorized(message: str) -> JSONResponse:
    return error_response(401, message, category="INVALID_AUTHENTICATION",
                          headers={"WWW-Authenticate": 'Bearer realm="corral"'})


def revoked(days_ago: int) -> JSONResponse:
    return unauthorized(f"The OAuth token used to make this call expired {days_ago} day(s) ago.")


def missing_scopes(scopes: list[str], headers: dict[str, str]) -> JSONResponse:
    # Same text as crm_common.auth.require_scope, but listing every missing scope at once.
    return error_response(
        403,
        "This app hasn't been granted all required scopes to make this call. Read more about required "
        "scopes here: https://developers.hubspot.com/scopes.",
        category="MISSING_SCOPES",
        headers=headers,
        errors=[{"message": "One or more of the following scopes are required.",
                 "context": {"requiredGranularScopes": scopes}}],
    )


def rate_limited(policy: str, headers: dict[str, str]) -> JSONResponse:
    # HubSpot's 429 body; `category` is extra: the SDK's Error model marks it required.
    request_id = current_request_id()
    name = "daily" if policy == "DAILY" else policy.lower()  # ten_secondly_rolling, as HubSpot words it
    return error_response(
        429,
        f"You have reached your {name} limit.",
        category="RATE_LIMITS",
        headers=headers,
        extra={"errorType": "RATE_LIMIT", "policyName": policy, "requestId": request_id},
    )


def not_found(headers: dict[str, str] | None = None) -> JSONResponse:
    return error_response(404, "The requested resource was not found", category="OBJECT_NOT_FOUND",
                          headers=headers)

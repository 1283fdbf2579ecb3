"""Logging in to Salesforce: the three server-side OAuth flows and the authorization-code exchange.

Salesforce answers no `expires_in`; a session lives for the org's timeout, so callers log in again
when a call is refused with 401 INVALID_SESSION_ID (see `client.SalesforceClient`).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

from sync_svc.salesforce.errors import LoginFailed, SalesforceUnavailable

Flow = Literal["client_credentials", "jwt_bearer", "refresh_token"]
FLOWS: tuple[str, ...] = ("client_credentials", "jwt_bearer", "refresh_token")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Salesforce accepts assertions that expire within three minutes.
JWT_LIFETIME_SECONDS = 170
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"


@dataclass(frozen=True)
class Credentials:
    """What a connection stores (encrypted) to log in again without a person."""

    login_url: str
    flow: Flow
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    refresh_token: str | None = None


@dataclass(frozen=True)
class SalesforceSession:
    access_token: str
    instance_url: str
    org_id: str
    user_id: str
    issued_at: datetime | None = None
    # Only the authorization-code exchange hands one out.
    refresh_token: str | None = None


class InvalidLoginUrl(ValueError):
    pass


def check_login_url(url: str) -> str:
    """Any https URL, or http on a loopback address (a local emulator); the URL without a trailing slash."""
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise InvalidLoginUrl(f"loginUrl is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not hostname:
        raise InvalidLoginUrl(f"loginUrl must be an absolute https URL, got {url!r}")
    if parts.username or parts.password:
        raise InvalidLoginUrl("loginUrl must not carry credentials")
    if parts.query or parts.fragment:
        raise InvalidLoginUrl("loginUrl must not carry a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(hostname):
        raise InvalidLoginUrl(f"loginUrl must use https (plain http is accepted only on a loopback address, "
                              f"not on {hostname})")
    return url.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def jwt_audience(login_url: str) -> str:
    """Salesforce wants its generic login host as `aud` (test.salesforce.com for sandboxes); any other
    login URL (an emulator, a proxy) is its own audience."""
    host = urlsplit(login_url).hostname or ""
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return SANDBOX_AUDIENCE
    if host == "login.salesforce.com" or host.endswith(".my.salesforce.com"):
        return PRODUCTION_AUDIENCE
    return login_url


def jwt_assertion(*, client_id: str, username: str, private_key: str, audience: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": username, "aud": audience, "exp": now + JWT_LIFETIME_SECONDS}
    try:
        return jwt.encode(claims, private_key, algorithm="RS256")
    except Exception:  # noqa: BLE001 - PyJWT and cryptography raise many kinds for a key they cannot use
        raise LoginFailed("invalid_request", "privateKey is not a usable RSA private key in PEM form") from None


def token_form(credentials: Credentials) -> dict[str, str]:
    if credentials.flow == "client_credentials":
        return {"grant_type": "client_credentials", "client_id": credentials.client_id,
                "client_secret": credentials.client_secret or ""}
    if credentials.flow == "refresh_token":
        form = {"grant_type": "refresh_token", "client_id": credentials.client_id,
                "refresh_token": credentials.refresh_token or ""}
        if credentials.client_secret:
            form["client_secret"] = credentials.client_secret
        return form
    if credentials.flow == "jwt_bearer":
        assertion = jwt_assertion(client_id=credentials.client_id, username=credentials.username or "",
                                  private_key=credentials.private_key or "",
                                  audience=jwt_audience(credentials.login_url))
        return {"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
    raise LoginFailed("unsupported_grant_type", f"flow {credentials.flow!r} is not supported")


async def login(http: httpx.AsyncClient, credentials: Credentials) -> SalesforceSession:
    return await _token_call(http, credentials.login_url, token_form(credentials))


async def exchange_code(http: httpx.AsyncClient, *, login_url: str, client_id: str, client_secret: str | None,
                        code: str, redirect_uri: str) -> SalesforceSession:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id}
    if client_secret:
        form["client_secret"] = client_secret
    return await _token_call(http, login_url, form)


def authorize_url(*, login_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                       "state": state, "scope": "api refresh_token"})
    return f"{login_url}/services/oauth2/authorize?{query}"


async def _token_call(http: httpx.AsyncClient, login_url: str, form: dict[str, str]) -> SalesforceSession:
    try:
        response = await http.post(f"{login_url}/services/oauth2/token", data=form,
                                   headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SalesforceUnavailable(f"Salesforce's login endpoint at {login_url} could not be reached "
                                    f"({exc.__class__.__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise SalesforceUnavailable(f"Salesforce's login endpoint answered {response.status_code}",
                                    status=response.status_code)
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        error = body.get("error", "invalid_grant") if isinstance(body, dict) else "invalid_grant"
        description = body.get("error_description") if isinstance(body, dict) else None
        raise LoginFailed(str(error), str(description or f"the login endpoint answered {response.status_code}"),
                          response.status_code)
    org_id, user_id = identity_ids(str(body.get("id", "")))
    issued_at = None
    if str(body.get("issued_at", "")).isdigit():
        issued_at = datetime.fromtimestamp(int(body["issued_at"]) / 1000, tz=UTC)
    return SalesforceSession(access_token=str(body["access_token"]), instance_url=str(body["instance_url"]).rstrip("/"),
                             org_id=org_id, user_id=user_id, issued_at=issued_at,
                             refresh_token=body.get("refresh_token"))


def identity_ids(identity_url: str) -> tuple[str, str]:
    """`https://login.salesforce.com/id/{orgId}/{userId}`: the org and the user the session runs as."""
    parts = [p for p in urlsplit(identity_url).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "id":
        return parts[-2], parts[-1]
    raise LoginFailed("invalid_grant", f"the token answer carries no identity URL ({identity_url!r})")

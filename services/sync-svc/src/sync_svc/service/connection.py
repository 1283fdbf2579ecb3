"""Connection use cases: connect with one of the server-side flows or the authorization code, show, disconnect.

Secrets travel from the request into `Credentials`, are sealed before they touch the database, and are
never part of an answer, a log line or an error message (Salesforce's `error_description` is passed on;
it never repeats what was sent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from crm_common.errors import HubSpotError
from crm_common.timestamps import timestamp_or_none
from sqlalchemy.ext.asyncio import AsyncSession

from sync_svc.connector import Connector
from sync_svc.domain.oauth_state import AuthorizationState, InvalidState, sign_state, verify_state
from sync_svc.repositories import connections as connection_repo
from sync_svc.repositories import links as link_repo
from sync_svc.salesforce import auth
from sync_svc.salesforce.client import SalesforceClient
from sync_svc.salesforce.errors import LoginFailed, SalesforceApiError, SalesforceError, SalesforceUnavailable

log = structlog.get_logger(__name__)
REQUIRED_BY_FLOW = {
    "client_credentials": ("clientSecret",),
    "jwt_bearer": ("username", "privateKey"),
    "refresh_token": ("refreshToken",),
    "authorization_code": ("clientSecret",),
}


@dataclass
class ConnectRequest:
    login_url: str
    flow: str
    client_id: str
    client_secret: str | None = None
    username: str | None = None
    private_key: str | None = None
    refresh_token: str | None = None


def connection_out(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:
        return {"status": "NOT_CONNECTED"}
    return {
        "status": row["status"], "loginUrl": row["login_url"], "flow": row["flow"], "clientId": row["client_id"],
        "username": row.get("username"), "orgId": row.get("org_id"), "userId": row.get("user_id"),
        "userName": row.get("user_name"), "instanceUrl": row.get("instance_url"),
        "apiVersion": row.get("api_version"), "connectedAt": timestamp_or_none(row.get("connected_at")),
        "disconnectedAt": timestamp_or_none(row.get("disconnected_at")), "lastError": row.get("last_error"),
    }




def check_login_url(url: str) -> str:
    try:
        return auth.check_login_url(url)
    except auth.InvalidLoginUrl as exc:
        raise HubSpotError(400, str(exc), errors=[{"message": str(exc), "code": "INVALID_LOGIN_URL",
                                                   "in": "loginUrl"}]) from None


def _check_fields(request: ConnectRequest) -> None:
    given = {"clientSecret": request.client_secret, "username": request.username,
             "privateKey": request.private_key, "refreshToken": request.refresh_token}
    missing = [name for name in REQUIRED_BY_FLOW[request.flow] if not given.get(name)]
    if not request.client_id:
        missing.insert(0, "clientId")
    if missing:
        raise HubSpotError(400, f"The {request.flow} flow needs {', '.join(missing)}",
                           errors=[{"message": f"{name} is required for {request.flow}", "code": "REQUIRED",
                                    "in": name} for name in missing])


def login_refused(exc: LoginFailed) -> HubSpotError:
    return HubSpotError(400, f"Salesforce refused the login: {exc.description} ({exc.error})",
                        sub_category="SALESFORCE_LOGIN_FAILED",
                        errors=[{"message": exc.description, "code": exc.error.upper()}])


def unreachable(exc: SalesforceError) -> HubSpotError:
    return HubSpotError(502, f"Salesforce could not be used: {exc}")


async def connect(*, account_id: int, request: ConnectRequest, session: AsyncSession,
                  connector: Connector) -> dict[str, Any]:
    """Log in, read the identity and /limits, store the sealed secrets: 200 CONNECTED or a 400 saying why."""
    request.login_url = check_login_url(request.login_url)
    if request.flow == "authorization_code":
        return await save_authorization_app(account_id=account_id, request=request, session=session,
                                            connector=connector)
    _check_fields(request)
    connector.require_box()
    credentials = auth.Credentials(login_url=request.login_url, flow=request.flow,  # type: ignore[arg-type]
                                   client_id=request.client_id, client_secret=request.client_secret,
                                   username=request.username, private_key=request.private_key,
                                   refresh_token=request.refresh_token)
    return await _establish(account_id=account_id, credentials=credentials, session=session, connector=connector)


async def _establish(*, account_id: int, credentials: auth.Credentials, session: AsyncSession,
                     connector: Connector, first_session: auth.SalesforceSession | None = None) -> dict[str, Any]:
    client = connector.client(account_id=account_id, credentials=credentials,
                              api_version=connector.settings.salesforce_api_version, session=first_session,
                              persist_sessions=False)
    try:
        sf_session = first_session or await client.login()
        api_version = _choose_version(await client.versions(), connector.settings.salesforce_api_version)
        client.api_version = api_version
        identity = await client.userinfo()
        limits = await client.limits()
    except LoginFailed as exc:
        raise login_refused(exc) from None
    except SalesforceApiError as exc:
        raise HubSpotError(400, f"Salesforce accepted the login but refused the API: {exc.message} ({exc.code})",
                           sub_category="SALESFORCE_API_REFUSED") from None
    except SalesforceUnavailable as exc:
        if exc.status is None:  # nothing answered at the URL the person gave
            raise HubSpotError(400, f"Salesforce could not be reached at {credentials.login_url}: {exc}",
                               sub_category="SALESFORCE_UNREACHABLE") from None
        raise unreachable(exc) from None
    except SalesforceError as exc:
        raise unreachable(exc) from None
    sf_session = client.session or sf_session
    existing = await connection_repo.get(session, account_id, for_update=True)
    if existing and existing.get("org_id") and existing["org_id"] != sf_session.org_id \
            and await link_repo.count_links(session, account_id):
        raise HubSpotError(409, f"This account synced with Salesforce org {existing['org_id']}; its links would not "
                                f"match org {sf_session.org_id}. Disconnect with forgetLinks=true first",
                           sub_category="DIFFERENT_ORG")
    row = await connection_repo.save_connected(
        session, account_id=account_id, login_url=credentials.login_url, flow=credentials.flow,
        client_id=credentials.client_id, username=credentials.username,
        secrets=connector.seal_secrets(credentials), sealed_session=connector.seal_session(sf_session),
        instance_url=sf_session.instance_url, org_id=sf_session.org_id, user_id=sf_session.user_id,
        user_name=identity.get("preferred_username"), api_version=api_version, connected_at=datetime.now(UTC))
    log.info("salesforce connected", account_id=account_id, org_id=sf_session.org_id, flow=credentials.flow)
    out = connection_out(row)
    daily = limits.get("DailyApiRequests") if isinstance(limits, dict) else None
    if isinstance(daily, dict):
        out["dailyApiRequests"] = {"max": daily.get("Max"), "remaining": daily.get("Remaining")}
    return out


def _choose_version(offered: list[str], wanted: str) -> str:
    if not offered or wanted in offered:
        return wanted
    return max(offered, key=lambda v: tuple(int(p) for p in v.split(".") if p.isdigit()))


async def save_authorization_app(*, account_id: int, request: ConnectRequest, session: AsyncSession,
                                 connector: Connector) -> dict[str, Any]:
    """The account's own connected app for the authorization-code flow (approved later in a browser)."""
    _check_fields(request)
    credentials = auth.Credentials(login_url=request.login_url, flow="refresh_token", client_id=request.client_id,
                                   client_secret=request.client_secret)
    row = await connection_repo.save_pending_authorization(
        session, account_id=account_id, login_url=request.login_url, client_id=request.client_id,
        secrets=connector.seal_secrets(credentials))
    return connection_out(row)


async def get_connection(*, account_id: int, session: AsyncSession) -> dict[str, Any]:
    return connection_out(await connection_repo.get(session, account_id))


async def disconnect(*, account_id: int, session: AsyncSession, connector: Connector, forget_links: bool) -> None:
    row = await connection_repo.get(session, account_id, for_update=True)
    if row is None:
        raise HubSpotError(404, "No Salesforce connection exists for this account", category="OBJECT_NOT_FOUND")
    if row["status"] == "CONNECTED" and connector.box is not None:
        await _revoke(row, connector)
    await connection_repo.disconnect(session, account_id)
    if forget_links:
        await link_repo.forget_all(session, account_id)
    log.info("salesforce disconnected", account_id=account_id, forgot_links=forget_links)


async def _revoke(row: dict[str, Any], connector: Connector) -> None:
    """Best effort: tell Salesforce the session is over (a failure leaves only an expiring token behind)."""
    try:
        opened = connector.open(row)
        if opened.session is not None:
            await connector.http.post(f"{opened.session.instance_url}/services/oauth2/revoke",
                                      data={"token": opened.session.access_token}, timeout=10)
    except Exception as exc:  # noqa: BLE001 - disconnecting must not depend on Salesforce answering
        log.warning("could not revoke the salesforce session", account_id=row["account_id"], error=type(exc).__name__)


# -- the authorization-code flow (how HubSpot connects) ------------------------------------------------------


async def authorize(*, account_id: int, redirect_uri: str, login_url: str | None, session: AsyncSession,
                    connector: Connector) -> str:
    """The org's authorize page with a signed state, for the connected app of the account or of the service."""
    if not redirect_uri.startswith(("https://", "http://")):
        raise HubSpotError(400, "redirectUri must be an absolute URL where Salesforce sends the person back",
                           errors=[{"message": "invalid redirectUri", "code": "INVALID_REDIRECT_URI",
                                    "in": "redirectUri"}])
    row = await connection_repo.get(session, account_id)
    settings = connector.settings
    if row is not None and row["flow"] == "authorization_code":
        app_login_url, client_id = row["login_url"], row["client_id"]
    elif settings.oauth_client_id:
        app_login_url, client_id = settings.oauth_login_url, settings.oauth_client_id
    else:
        raise HubSpotError(400, "No connected app is set up for the authorization-code flow: save the account's own "
                                "with PUT /corral/v1/salesforce/connection {\"flow\": \"authorization_code\", ...} first",
                           sub_category="NO_CONNECTED_APP")
    login = check_login_url(login_url) if login_url else app_login_url
    state = sign_state(AuthorizationState(account_id=account_id, redirect_uri=redirect_uri, login_url=login,
                                          client_id=client_id,
                                          expires_at=int(time.time()) + settings.oauth_state_ttl_seconds),
                       settings.internal_secret)
    return auth.authorize_url(login_url=login, client_id=client_id, redirect_uri=redirect_uri, state=state)


async def finish_authorization(*, account_id: int, code: str, state: str, session: AsyncSession,
                               connector: Connector) -> dict[str, Any]:
    try:
        verified = verify_state(state, connector.settings.internal_secret)
    except InvalidState as exc:
        raise HubSpotError(400, f"The authorization cannot be finished: {exc}", sub_category="INVALID_STATE") from None
    if verified.account_id != account_id:
        raise HubSpotError(400, "The authorization cannot be finished: the state was issued for another account",
                           sub_category="INVALID_STATE")
    connector.require_box()
    row = await connection_repo.get(session, account_id)
    client_secret = None
    if row is not None and row["flow"] == "authorization_code" and row["client_id"] == verified.client_id:
        client_secret = connector.open(row).credentials.client_secret
    elif verified.client_id == connector.settings.oauth_client_id:
        client_secret = connector.settings.oauth_client_secret or None
    try:
        sf_session = await auth.exchange_code(connector.http, login_url=verified.login_url,
                                              client_id=verified.client_id, client_secret=client_secret, code=code,
                                              redirect_uri=verified.redirect_uri)
    except LoginFailed as exc:
        raise login_refused(exc) from None
    except SalesforceUnavailable as exc:
        if exc.status is None:
            raise HubSpotError(400, f"Salesforce could not be reached at {verified.login_url}: {exc}",
                               sub_category="SALESFORCE_UNREACHABLE") from None
        raise unreachable(exc) from None
    if not sf_session.refresh_token:
        raise HubSpotError(400, "Salesforce approved the connection without a refresh token: give the connected "
                                "app the refresh_token scope", sub_category="NO_REFRESH_TOKEN")
    credentials = auth.Credentials(login_url=verified.login_url, flow="refresh_token", client_id=verified.client_id,
                                   client_secret=client_secret, refresh_token=sf_session.refresh_token)
    return await _establish(account_id=account_id, credentials=credentials, session=session, connector=connector,
                            first_session=sf_session)


async def client_for(*, account_id: int, session: AsyncSession, connector: Connector) -> tuple[dict[str, Any],
                                                                                               SalesforceClient]:
    """The stored connection and a client for it, or 409 when the account is not connected."""
    row = await connection_repo.get(session, account_id)
    if row is None or row["status"] != "CONNECTED":
        raise HubSpotError(409, "Salesforce is not connected for this account: PUT /corral/v1/salesforce/connection "
                                "first", sub_category="NOT_CONNECTED")
    return row, await connector.for_connection(session, row)

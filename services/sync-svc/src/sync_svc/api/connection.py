"""`/corral/v1/salesforce/connection`: connect an org, see the connection, disconnect."""

from __future__ import annotations

from typing import Any, Literal

from crm_common.errors import error_responses
from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sync_svc.api.deps import Reader, Resources, Session, Writer
from sync_svc.service import connection as service

router = APIRouter(prefix="/corral/v1/salesforce/connection", tags=["Salesforce sync"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429, 502, 503)


class ConnectionInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loginUrl: str = Field(description="The org's login host: https://login.salesforce.com, https://test.salesforce.com, "
                                      "a My Domain URL, or http on a loopback address (a local emulator)")
    flow: Literal["client_credentials", "jwt_bearer", "refresh_token", "authorization_code"] = Field(
        description="authorization_code saves the account's connected app; the person then approves it through "
                    "GET .../connection/authorize")
    clientId: str = Field(min_length=1, max_length=255)
    clientSecret: str | None = Field(default=None, max_length=1024)
    username: str | None = Field(default=None, max_length=255, description="jwt_bearer: the integration user")
    privateKey: str | None = Field(default=None, max_length=16384, description="jwt_bearer: RSA private key (PEM)")
    refreshToken: str | None = Field(default=None, max_length=4096)


class DailyApiRequests(BaseModel):
    max: int | None = None
    remaining: int | None = None


class ConnectionOut(BaseModel):
    status: str = Field(description="CONNECTED, AUTHORIZATION_REQUIRED, DISCONNECTED, ERROR or NOT_CONNECTED")
    orgId: str | None = None
    userId: str | None = None
    userName: str | None = None
    instanceUrl: str | None = None
    apiVersion: str | None = None
    connectedAt: str | None = None
    disconnectedAt: str | None = None
    loginUrl: str | None = None
    flow: str | None = None
    clientId: str | None = None
    username: str | None = None
    lastError: str | None = None
    dailyApiRequests: DailyApiRequests | None = None


@router.put("", response_model=ConnectionOut, response_model_exclude_none=True, responses=ERRORS,
            summary="Connect a Salesforce org (logs in, reads the identity and /limits; secrets stored encrypted)")
async def connect(body: ConnectionInput, auth: Writer, session: Session, resources: Resources) -> Any:
    return await service.connect(
        account_id=auth.account_id, session=session, connector=resources.connector,
        request=service.ConnectRequest(login_url=body.loginUrl, flow=body.flow, client_id=body.clientId,
                                       client_secret=body.clientSecret, username=body.username,
                                       private_key=body.privateKey, refresh_token=body.refreshToken))


@router.get("", response_model=ConnectionOut, response_model_exclude_none=True, responses=ERRORS,
            summary="The connection (never a secret or a token)")
async def get_connection(auth: Reader, session: Session) -> Any:
    return await service.get_connection(account_id=auth.account_id, session=session)


@router.delete("", status_code=204, responses=ERRORS,
               summary="Disconnect: sync stops, settings stay (forgetLinks=true also forgets every link)")
async def disconnect(auth: Writer, session: Session, resources: Resources,
                     forgetLinks: bool = Query(default=False, description="Also forget which records are linked, "
                                                                          "to connect another org")) -> Response:
    await service.disconnect(account_id=auth.account_id, session=session, connector=resources.connector,
                             forget_links=forgetLinks)
    return Response(status_code=204)


@router.get("/authorize", status_code=302, response_class=RedirectResponse, responses={302: {
    "description": "Redirect to the org's authorize page"}, **ERRORS},
            summary="Start the authorization-code flow: 302 to the org's authorize page with a signed state")
async def authorize(auth: Writer, session: Session, resources: Resources,
                    redirectUri: str = Query(description="Your page Salesforce sends the person back to; it passes "
                                                         "code and state to .../connection/callback"),
                    loginUrl: str | None = Query(default=None, description="Another login host than the app's")
                    ) -> RedirectResponse:
    location = await service.authorize(account_id=auth.account_id, redirect_uri=redirectUri, login_url=loginUrl,
                                       session=session, connector=resources.connector)
    return RedirectResponse(location, status_code=302)


@router.get("/callback", response_model=ConnectionOut, response_model_exclude_none=True, responses=ERRORS,
            summary="Finish the authorization-code flow with the code and state Salesforce sent back")
async def callback(auth: Writer, session: Session, resources: Resources, code: str = Query(max_length=2048),
                   state: str = Query(max_length=4096)) -> Any:
    return await service.finish_authorization(account_id=auth.account_id, code=code, state=state, session=session,
                                              connector=resources.connector)

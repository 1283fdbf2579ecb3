"""/services/oauth2: token (four grants), authorize (issues codes for the integration user), revoke."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from salesforce_emulator.api.common import OrgDep, json_response
from salesforce_emulator.auth import JWT_BEARER_GRANT
from salesforce_emulator.errors import OAuthError

router = APIRouter(prefix="/services/oauth2")
GENERIC_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")


def instance_url(request: Request) -> str:
    """The emulator's own base URL as the client reached it, so http and https listeners both work."""
    return str(request.base_url).rstrip("/")


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        raise OAuthError("invalid_client", "invalid client credentials") from None
    return client_id, client_secret


@router.post("/token")
async def token(request: Request, org: OrgDep) -> Response:
    form = await request.form()
    grant_type = form.get("grant_type")
    basic_id, basic_secret = _basic_credentials(request)
    client_id = form.get("client_id") or basic_id
    client_secret = form.get("client_secret") or basic_secret
    base = instance_url(request)
    org_id = org.settings.org_id
    app = org.connected_app
    if grant_type == "client_credentials":
        if request.url.hostname in GENERIC_LOGIN_HOSTS:
            # Salesforce serves this flow on My Domain hosts only.
            raise OAuthError("invalid_grant", "request not supported on this domain")
        body = app.client_credentials(client_id, client_secret, run_as=org.store.integration_user_id,
                                      instance_url=base, org_id=org_id)
    elif grant_type == "refresh_token":
        body = app.refresh(form.get("refresh_token"), client_id, client_secret, instance_url=base, org_id=org_id)
    elif grant_type == "authorization_code":
        body = app.exchange_code(form.get("code"), form.get("redirect_uri"), client_id, client_secret,
                                 instance_url=base, org_id=org_id)
    elif grant_type == JWT_BEARER_GRANT:
        body = app.jwt_bearer(form.get("assertion"), user_id_for=org.user_id_for_username, instance_url=base,
                              org_id=org_id)
    elif not grant_type:
        raise OAuthError("invalid_request", "grant type not supported")
    else:
        raise OAuthError("unsupported_grant_type", "grant type not supported")
    return json_response(body)


@router.get("/authorize")
async def authorize(request: Request, org: OrgDep) -> Response:
    """Approves at once as the admin user: there is no login page to click through in an emulator."""
    params = request.query_params
    if params.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response type not supported")
    code = org.connected_app.issue_code(params.get("client_id"), params.get("redirect_uri"),
                                        org.store.admin_user_id)
    query = {"code": code}
    if "state" in params:
        query["state"] = params["state"]
    redirect_uri = params["redirect_uri"]
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(query)}", status_code=302)


@router.post("/revoke")
async def revoke(request: Request, org: OrgDep) -> Response:
    form = await request.form()
    token_value = form.get("token") or request.query_params.get("token") or ""
    org.connected_app.sessions.pop(str(token_value), None)
    org.connected_app.refresh_tokens.pop(str(token_value), None)
    return Response(status_code=200)


@router.get("/userinfo")
async def userinfo(request: Request, org: OrgDep) -> Response:
    """OpenID Connect user info for the session's user (how a connecting app learns who it runs as)."""
    authorization = request.headers.get("authorization", "")
    session = org.connected_app.session_for(authorization[7:].strip()) \
        if authorization[:7].lower() == "bearer " else None
    if session is None:
        return Response(b"Bad_OAuth_Token", status_code=403, media_type="text/plain")
    user = org.store.records[session.user_id]
    org_id = org.settings.org_id
    return json_response({
        "sub": f"https://login.salesforce.com/id/{org_id}/{user['Id']}", "user_id": user["Id"],
        "organization_id": org_id, "preferred_username": user["Username"], "name": user["Name"],
        "given_name": user["FirstName"], "family_name": user["LastName"], "email": user["Email"],
        "zoneinfo": user["TimeZoneSidKey"], "active": user["IsActive"],
        "urls": {"rest": f"{instance_url(request)}/services/data/v{{version}}/",
                 "sobjects": f"{instance_url(request)}/services/data/v{{version}}/sobjects/",
                 "query": f"{instance_url(request)}/services/data/v{{version}}/query/"},
    })

"""Bearer tokens, accounts, scopes and the signed context the services receive."""

from __future__ import annotations

import asyncio
import time

import httpx
import sqlalchemy as sa
from corral_gateway.tokens import revoke_token, tokens
from crm_common.auth import AuthContext, sign_context, verify_context

from .conftest import SECRET


def assert_hubspot_error(response: httpx.Response, status: int, category: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == category
    assert body["correlationId"] == response.headers["x-request-id"]
    return body


async def test_valid_token_reaches_the_service_with_its_account(gateway, client, make_token) -> None:
    token = await make_token()
    response = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers=token.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service"] == "records"
    assert body["auth"]["account_id"] == token.record.account_id
    assert body["auth"]["token_id"] == token.record.id
    assert body["auth"]["caller"] == "gateway"
    # The service got no bearer token, only the signed context, which verifies with the shared secret.
    assert "authorization" not in body["headers"]
    context = verify_context(body["headers"]["x-corral-auth"], SECRET)
    assert context.account_id == token.record.account_id
    assert sorted(context.scopes) == sorted(token.record.scopes)


async def test_each_account_sees_only_its_own_account_id(gateway, client, make_token) -> None:
    first, second = await make_token(), await make_token()
    assert first.record.account_id != second.record.account_id
    for token in (first, second):
        response = await client.get(f"{gateway.url}/crm/v3/objects/deals", headers=token.headers)
        assert response.json()["auth"]["account_id"] == token.record.account_id


async def test_missing_credentials(gateway, client) -> None:
    response = await client.get(f"{gateway.url}/crm/v3/objects/contacts")
    body = assert_hubspot_error(response, 401, "INVALID_AUTHENTICATION")
    assert body["message"].startswith("Authentication credentials not found")


async def test_unknown_token_and_wrong_schemes_are_refused(gateway, client, make_token) -> None:
    token = await make_token()
    for headers, params in [
        ({"Authorization": "Bearer pat-corral-not-a-real-token"}, {}),
        ({"Authorization": f"Basic {token.value}"}, {}),
        ({"Authorization": "Bearer"}, {}),
        ({}, {"hapikey": token.value}),
    ]:
        response = await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers=headers, params=params)
        assert_hubspot_error(response, 401, "INVALID_AUTHENTICATION")
        assert "service" not in response.json()  # answered by the gateway, never forwarded


async def test_revoked_token_is_refused_once_the_cache_expires(gateway, client, make_token, engine) -> None:
    token = await make_token()
    url = f"{gateway.url}/crm/v3/objects/contacts"
    assert (await client.get(url, headers=token.headers)).status_code == 200
    await revoke_token(engine, key=str(token.record.id))
    await asyncio.sleep(1.2)  # the test gateway caches lookups for 1 s
    body = assert_hubspot_error(await client.get(url, headers=token.headers), 401, "INVALID_AUTHENTICATION")
    assert body["message"].startswith("The OAuth token used to make this call expired")


async def test_last_used_at_is_recorded(gateway, client, make_token, engine) -> None:
    token = await make_token()
    assert (await client.get(f"{gateway.url}/crm/v3/objects/contacts", headers=token.headers)).status_code == 200
    deadline = time.monotonic() + 5
    while True:
        async with engine.connect() as conn:
            used = (await conn.execute(sa.select(tokens.c.last_used_at)
                                       .where(tokens.c.id == token.record.id))).scalar_one()
        if used is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert used is not None


async def test_scopes_are_enforced(gateway, client, make_token) -> None:
    token = await make_token(scopes=["crm.objects.contacts.read"])
    base = f"{gateway.url}/crm/v3/objects"
    assert (await client.get(f"{base}/contacts", headers=token.headers)).status_code == 200
    assert (await client.get(f"{base}/0-1/5", headers=token.headers)).status_code == 200
    assert (await client.post(f"{base}/contacts/search", json={}, headers=token.headers)).status_code == 200
    refused = await client.post(f"{base}/contacts", json={"properties": {}}, headers=token.headers)
    body = assert_hubspot_error(refused, 403, "MISSING_SCOPES")
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.objects.contacts.write"]
    assert "service" not in body
    assert_hubspot_error(await client.get(f"{base}/companies", headers=token.headers), 403, "MISSING_SCOPES")
    assert_hubspot_error(await client.get(f"{gateway.url}/crm/v3/imports", headers=token.headers), 403,
                         "MISSING_SCOPES")


async def test_sync_scopes_and_the_older_scope_that_grants_both(gateway, client, make_token) -> None:
    base = f"{gateway.url}/corral/v1/salesforce"
    reader = await make_token(scopes=["corral.sync.read"])
    assert (await client.get(f"{base}/connection", headers=reader.headers)).status_code == 200
    refused = await client.put(f"{base}/connection", json={}, headers=reader.headers)
    body = assert_hubspot_error(refused, 403, "MISSING_SCOPES")
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["corral.sync.write"]
    older = await make_token(scopes=["corral.sync"])
    assert (await client.get(f"{base}/sync/status", headers=older.headers)).status_code == 200
    assert (await client.post(f"{base}/sync/run", headers=older.headers)).status_code == 200


async def test_client_supplied_auth_header_is_replaced(gateway, client, make_token) -> None:
    token = await make_token()
    forged = sign_context(AuthContext(account_id=999_999, scopes=["*"]), SECRET)
    response = await client.get(f"{gateway.url}/crm/v3/objects/contacts",
                                headers={**token.headers, "X-Corral-Auth": forged})
    assert response.json()["auth"]["account_id"] == token.record.account_id


async def test_services_refuse_unsigned_or_forged_context(upstreams, client) -> None:
    url = f"{upstreams['records'].url}/crm/v3/objects/contacts"
    assert (await client.get(url)).status_code == 401
    forged = sign_context(AuthContext(account_id=1, scopes=["*"]), "not-the-secret")
    assert (await client.get(url, headers={"X-Corral-Auth": forged})).status_code == 401
    genuine = sign_context(AuthContext(account_id=1, scopes=["*"]), SECRET)
    assert (await client.get(url, headers={"X-Corral-Auth": genuine})).status_code == 200

"""Connecting an org (every flow), secrets at rest, and the objects and mappings API with its refusals."""

from __future__ import annotations

import asyncpg
import httpx
from crm_common.settings import to_plain_url
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sync_svc.repositories import connections

from .helpers import CLIENT, SALESFORCE, admin

BASE = "/corral/v1/salesforce"


async def test_client_credentials_connect_and_secrets_at_rest(sync, sync_app, salesforce, account_id, capfd):
    response = await sync.put(f"{BASE}/connection", json=CLIENT)
    assert response.status_code == 200, response.text
    body = response.json()
    state = await admin(salesforce, "GET", "/state")
    assert body["status"] == "CONNECTED" and body["userId"] == state["integrationUserId"]
    assert body["orgId"].startswith("00D") and body["instanceUrl"] == SALESFORCE and body["apiVersion"]
    assert body["connectedAt"] and body["dailyApiRequests"]["max"] == 100_000
    shown = (await sync.get(f"{BASE}/connection")).json()
    assert shown["status"] == "CONNECTED" and "clientSecret" not in shown
    connector = sync_app.runtime.resources.connector
    async with sync_app.runtime.sessionmaker() as db:
        row = await connections.get(db, account_id)
    token = connector.open(row).session.access_token
    conn = await asyncpg.connect(to_plain_url(sync_app.database_url))
    try:
        raw = await conn.fetchrow("SELECT * FROM connections WHERE account_id = $1", account_id)
    finally:
        await conn.close()
    stored = b"".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in raw.values())
    for secret in (CLIENT["clientSecret"], token):
        assert secret.encode() not in stored
        assert secret not in response.text and secret not in str(shown)
    out, err = capfd.readouterr()
    assert CLIENT["clientSecret"] not in out + err and token not in out + err


async def test_bad_credentials_and_login_urls_are_refused(sync):
    refused = await sync.put(f"{BASE}/connection", json={**CLIENT, "clientSecret": "wrong"})
    assert refused.status_code == 400
    assert "invalid client credentials" in refused.json()["message"] and "wrong" not in refused.text
    insecure = await sync.put(f"{BASE}/connection", json={**CLIENT, "loginUrl": "http://salesforce.example.com"})
    assert insecure.status_code == 400 and "https" in insecure.json()["message"]
    missing = await sync.put(f"{BASE}/connection", json={**CLIENT, "clientSecret": None})
    assert missing.status_code == 400 and "clientSecret" in missing.json()["message"]
    assert (await sync.get(f"{BASE}/connection")).json()["status"] == "NOT_CONNECTED"


async def test_jwt_bearer_connect_and_disconnect(sync, salesforce):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    await admin(salesforce, "POST", "/jwt-keys", json={"certificate": public})
    body = {"loginUrl": SALESFORCE, "flow": "jwt_bearer", "clientId": "corral-emulator",
            "username": "integration@corral-emulator.example", "privateKey": pem}
    response = await sync.put(f"{BASE}/connection", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["flow"] == "jwt_bearer" and "BEGIN PRIVATE KEY" not in response.text
    assert (await sync.delete(f"{BASE}/connection")).status_code == 204
    assert (await sync.get(f"{BASE}/connection")).json()["status"] == "DISCONNECTED"
    assert (await sync.post(f"{BASE}/sync/start")).status_code == 409


async def test_authorization_code_flow(sync, salesforce):
    app = {"loginUrl": SALESFORCE, "flow": "authorization_code", "clientId": "corral-emulator",
           "clientSecret": "corral-emulator-secret"}
    saved = await sync.put(f"{BASE}/connection", json=app)
    assert saved.json()["status"] == "AUTHORIZATION_REQUIRED"
    start = await sync.get(f"{BASE}/connection/authorize", params={"redirectUri": "https://app.example/back"})
    assert start.status_code == 302
    authorize = httpx.URL(start.headers["location"])
    assert authorize.path == "/services/oauth2/authorize" and authorize.params["state"]
    back = await salesforce.get(str(authorize))
    returned = httpx.URL(back.headers["location"])
    assert returned.host == "app.example"
    tampered = await sync.get(f"{BASE}/connection/callback", params={"code": returned.params["code"],
                                                                     "state": returned.params["state"] + "x"})
    assert tampered.status_code == 400 and "state" in tampered.json()["message"]
    done = await sync.get(f"{BASE}/connection/callback", params=dict(returned.params))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "CONNECTED" and done.json()["flow"] == "refresh_token"


async def test_objects_and_mapping_refusals(sync, salesforce):
    assert (await sync.put(f"{BASE}/connection", json=CLIENT)).status_code == 200
    await admin(salesforce, "POST", "/objects/Contact/fields", json={
        "name": "Tier__c", "type": "picklist", "restrictedPicklist": True,
        "picklistValues": ["Gold", "Silver"]})
    wrong = await sync.put(f"{BASE}/objects/contacts", json={"salesforceObject": "Account"})
    assert wrong.status_code == 400 and "Contact or Lead" in wrong.json()["message"]
    unknown = await sync.put(f"{BASE}/objects/tickets", json={"salesforceObject": "Case"})
    assert unknown.status_code == 404
    enabled = await sync.put(f"{BASE}/objects/contacts", json={"salesforceObject": "Contact", "enabled": True})
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["mappings"] >= 10
    mappings = (await sync.get(f"{BASE}/objects/contacts/mappings")).json()
    by_property = {m["property"]: m for m in mappings["results"]}
    assert by_property["email"]["salesforceField"] == "Email" and by_property["email"]["standard"]
    assert by_property["jobtitle"]["syncRule"] == "PREFER_SALESFORCE_UNLESS_BLANK"
    assert any("128 characters" in w for w in by_property["jobtitle"]["warnings"])

    async def refused(body: dict, status: int, *words: str) -> None:
        response = await sync.post(f"{BASE}/objects/contacts/mappings", json=body)
        assert response.status_code == status, response.text
        message = response.json()["message"]
        for word in words:
            assert word in message, message

    await refused({"property": "numberofemployees", "salesforceField": "Department"}, 400, "property")
    await refused({"property": "hs_analytics_num_visits", "salesforceField": "Department"}, 400,
                  "Type mismatch", "number", "string")
    await refused({"property": "industry", "salesforceField": "Email"}, 409, "Contact.Email", "email")
    await refused({"property": "city", "salesforceField": "Department"}, 409, "city is already mapped")
    await refused({"property": "email", "salesforceField": "Department"}, 409, "email is already mapped")
    await refused({"property": "hubspot_owner_id", "salesforceField": "Department"}, 400, "user property")
    await refused({"property": "industry", "salesforceField": "Nope__c"}, 400, "no field named 'Nope__c'")
    await refused({"property": "industry", "salesforceField": "Name", "syncRule": "TWO_WAY"}, 400, "read-only")
    await refused({"property": "industry", "salesforceField": "Department", "syncRule": "SOMETIMES"}, 400, "syncRule")
    created = await sync.post(f"{BASE}/objects/contacts/mappings",
                              json={"property": "industry", "salesforceField": "Department", "syncRule": "TWO_WAY"})
    assert created.status_code == 201 and created.json()["standard"] is False
    tier = await sync.post(f"{BASE}/objects/contacts/mappings", json={
        "property": "hs_lead_status", "salesforceField": "Tier__c", "syncRule": "TWO_WAY"})
    assert tier.status_code == 201
    assert any("restricted picklist" in w and "NEW" in w for w in tier.json()["warnings"])
    standard = by_property["email"]["id"]
    deleted = await sync.delete(f"{BASE}/objects/contacts/mappings/{standard}")
    assert deleted.status_code == 400 and "DONT_SYNC" in deleted.json()["message"]
    changed = await sync.patch(f"{BASE}/objects/contacts/mappings/{by_property['lastname']['id']}",
                               json={"syncRule": "DONT_SYNC"})
    assert changed.status_code == 200 and any("REQUIRED_FIELD_MISSING" in w for w in changed.json()["warnings"])
    listed = (await sync.get(f"{BASE}/objects/contacts/mappings")).json()
    assert any("LastName is required" in w for w in listed["warnings"])
    assert (await sync.delete(f"{BASE}/objects/contacts/mappings/{created.json()['id']}")).status_code == 204
    objects = (await sync.get(f"{BASE}/objects")).json()["results"]
    assert {o["objectType"]: o["enabled"] for o in objects} == {"contacts": True, "companies": False, "deals": False}


async def test_more_than_500_mappings_are_refused(sync, sync_app, account_id):
    assert (await sync.put(f"{BASE}/connection", json=CLIENT)).status_code == 200
    assert (await sync.put(f"{BASE}/objects/companies", json={"salesforceObject": "Account"})).status_code == 200
    have = len((await sync.get(f"{BASE}/objects/companies/mappings")).json()["results"])
    # 500 mappings made directly in the table (making 500 properties and fields through the APIs only adds time).
    conn = await asyncpg.connect(to_plain_url(sync_app.database_url))
    try:
        await conn.executemany(
            "INSERT INTO field_mappings (account_id, object_type, salesforce_object, property, salesforce_field, "
            "sync_rule, property_type, property_field_type, salesforce_type) "
            "VALUES ($1, 'companies', 'Account', $2, $3, 'TWO_WAY', 'string', 'text', 'string')",
            [(account_id, f"p{i}", f"F{i}__c") for i in range(500 - have)])
    finally:
        await conn.close()
    response = await sync.post(f"{BASE}/objects/companies/mappings",
                               json={"property": "description", "salesforceField": "Site"})
    assert response.status_code == 400
    assert "500 field mappings" in response.json()["message"]

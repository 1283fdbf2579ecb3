"""Behaviour of the REST surface beyond single errors: OAuth flows, paging, replication, collections,
composite, conditional requests, admin hooks and call accounting."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_datetime
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from salesforce_emulator.app import create_app
from salesforce_emulator.clock import parse_datetime
from salesforce_emulator.org import Org
from salesforce_emulator.settings import EmulatorSettings

from .conftest import API, BASE_URL, CLIENT_ID, CLIENT_SECRET, SalesforceApi, fetch_token


# -- OAuth ------------------------------------------------------------------------------------------------------
async def test_client_credentials_with_basic_auth_and_instance_url_follows_scheme(
        http_client: httpx.AsyncClient) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    response = await http_client.post("http://127.0.0.1:8090/services/oauth2/token",
                                      data={"grant_type": "client_credentials"},
                                      headers={"Authorization": f"Basic {basic}"})
    body = response.json()
    assert response.status_code == 200
    assert body["instance_url"] == "http://127.0.0.1:8090"
    assert body["token_type"] == "Bearer" and body["issued_at"].isdigit() and "expires_in" not in body
    assert body["id"].startswith("https://login.salesforce.com/id/00D")


async def test_bad_client_credentials_use_oauth_error_body(http_client: httpx.AsyncClient) -> None:
    response = await http_client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}
    response = await http_client.post("/services/oauth2/token", data={"grant_type": "password"})
    assert response.json()["error"] == "unsupported_grant_type"


async def test_authorization_code_then_refresh_token(http_client: httpx.AsyncClient, org: Org) -> None:
    redirect = "https://app.example/callback"
    response = await http_client.get("/services/oauth2/authorize", params={
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect, "state": "xyz"})
    assert response.status_code == 302
    location = urlparse(response.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect and query["state"] == ["xyz"]
    token_request = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect,
                     "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    granted = (await http_client.post("/services/oauth2/token", data=token_request)).json()
    assert granted["refresh_token"] and granted["id"].endswith(org.store.admin_user_id)
    replay = await http_client.post("/services/oauth2/token", data=token_request)
    assert replay.json()["error"] == "invalid_grant"
    refreshed = await http_client.post("/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": granted["refresh_token"], "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET})
    assert refreshed.status_code == 200 and "refresh_token" not in refreshed.json()
    headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await http_client.get(f"{API}/limits", headers=headers)).status_code == 200


def _rsa_certificate() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt-test")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return key, certificate.public_bytes(serialization.Encoding.PEM).decode()


async def test_jwt_bearer_verifies_signature_against_registered_certificate(
        http_client: httpx.AsyncClient, sf: SalesforceApi) -> None:
    key, certificate = _rsa_certificate()
    await sf.admin("POST", "/jwt-keys", json={"certificate": certificate})
    claims = {"iss": CLIENT_ID, "sub": "integration@corral-emulator.example", "aud": "https://login.salesforce.com",
              "exp": datetime.now(UTC) + timedelta(minutes=3)}
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    response = await http_client.post("/services/oauth2/token", data={
        "grant_type": grant, "assertion": jwt.encode(claims, key, algorithm="RS256")})
    assert response.status_code == 200, response.text
    other_key, _ = _rsa_certificate()
    forged = await http_client.post("/services/oauth2/token", data={
        "grant_type": grant, "assertion": jwt.encode(claims, other_key, algorithm="RS256")})
    assert forged.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}
    stranger = await http_client.post("/services/oauth2/token", data={
        "grant_type": grant, "assertion": jwt.encode({**claims, "sub": "nobody@x"}, key, algorithm="RS256")})
    assert stranger.json()["error_description"] == "user hasn't approved this consumer"


# -- paths, metadata --------------------------------------------------------------------------------------------
async def test_trailing_slash_is_served_without_redirect(sf: SalesforceApi) -> None:
    created = await sf.post("/sobjects/Account/", json={"Name": "Slash"})
    assert created.status_code == 201
    assert (await sf.get("/query/", params={"q": "SELECT Id FROM Account"})).json()["totalSize"] == 1
    assert (await sf.client.get("/services/data/")).json()[0]["url"].startswith("/services/data/v")


async def test_date_header_follows_the_org_clock(sf: SalesforceApi) -> None:
    from email.utils import parsedate_to_datetime

    before = parsedate_to_datetime((await sf.get("/limits")).headers["date"])
    assert abs((before - datetime.now(UTC)).total_seconds()) < 5
    await sf.admin("POST", "/clock/advance", json={"days": 3})
    after = parsedate_to_datetime((await sf.get("/limits")).headers["date"])
    assert timedelta(days=3) - timedelta(seconds=5) < after - before < timedelta(days=3, seconds=5)
    assert len((await sf.get("/limits")).headers.get_list("date")) == 1


async def test_admin_api_is_off_by_default() -> None:
    app = create_app(EmulatorSettings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        assert (await client.post("/__emulator__/reset")).status_code == 404
        assert (await client.get("/livez")).status_code == 200


async def test_custom_object_describe_and_global_if_modified_since(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/objects", json={"name": "Invoice__c", "fields": [
        {"name": "Total__c", "type": "currency", "precision": 10, "scale": 2},
        {"name": "Account__c", "type": "reference", "referenceTo": ["Account"]},
        {"name": "Status__c", "type": "picklist", "picklistValues": ["Open", "Paid"], "restrictedPicklist": True}]})
    described = (await sf.get("/sobjects/Invoice__c/describe")).json()
    assert described["custom"] is True and described["keyPrefix"].startswith("a")
    fields = {field["name"]: field for field in described["fields"]}
    assert fields["Account__c"]["relationshipName"] == "Account__r"
    assert [value["value"] for value in fields["Status__c"]["picklistValues"]] == ["Open", "Paid"]
    account_id = await sf.create("Account", {"Name": "Billed"})
    invoice_id = await sf.create("Invoice__c", {"Name": "INV-1", "Total__c": 12.5, "Account__c": account_id})
    row = (await sf.query("SELECT Name, Account__r.Name FROM Invoice__c")).json()["records"][0]
    assert row["Account__r"]["Name"] == "Billed" and invoice_id.startswith(described["keyPrefix"])
    children = (await sf.get("/sobjects/Account/describe")).json()["childRelationships"]
    assert any(child["childSObject"] == "Invoice__c" for child in children)
    future = http_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    assert (await sf.get("/sobjects", headers={"If-Modified-Since": future})).status_code == 304
    past = http_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert (await sf.get("/sobjects", headers={"If-Modified-Since": past})).status_code == 200


# -- SOQL -------------------------------------------------------------------------------------------------------
async def test_query_paging_count_and_query_all(sf: SalesforceApi) -> None:
    account_ids = [await sf.create("Account", {"Name": f"Page {n}"}) for n in range(6)]
    await sf.delete(f"/sobjects/Account/{account_ids[0]}")
    first = (await sf.query("SELECT Id FROM Account ORDER BY Name")).json()
    assert first["totalSize"] == 5 and len(first["records"]) == 2
    second = (await sf.get(first["nextRecordsUrl"])).json()
    third = (await sf.get(second["nextRecordsUrl"])).json()
    assert third["done"] is True and "nextRecordsUrl" not in third
    seen = [r["Id"] for page in (first, second, third) for r in page["records"]]
    assert seen == account_ids[1:]
    everything = (await sf.get("/queryAll", params={"q": "SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true"}))
    assert [r["Id"] for r in everything.json()["records"]] == [account_ids[0]]
    count = (await sf.query("SELECT COUNT() FROM Account WHERE Name LIKE 'page%'")).json()
    assert count == {"totalSize": 5, "done": True, "records": []}


async def test_query_filters_dates_and_ordering(sf: SalesforceApi, org: Org) -> None:
    org.page_size = 2000
    await sf.admin("POST", "/seed", json={"records": [
        {"attributes": {"type": "Opportunity"}, "Name": "Old", "StageName": "Prospecting", "CloseDate": "2024-01-01",
         "Amount": 10, "CreatedDate": "2024-01-01T00:00:00Z"},
        {"attributes": {"type": "Opportunity"}, "Name": "New", "StageName": "Closed Won", "CloseDate": "2026-11-30",
         "Amount": None},
        {"attributes": {"type": "Opportunity"}, "Name": "Mid", "StageName": "Closed Lost", "CloseDate": "2025-06-01",
         "Amount": 30}]})
    async def names(where_and_order: str) -> list[str]:
        response = await sf.query(f"SELECT Name FROM Opportunity {where_and_order}")
        assert response.status_code == 200, response.text
        return [record["Name"] for record in response.json()["records"]]

    assert await names("WHERE CreatedDate = LAST_N_DAYS:3 ORDER BY Name") == ["Mid", "New"]
    assert await names("WHERE CreatedDate < 2025-01-01T00:00:00Z") == ["Old"]
    assert await names("WHERE CloseDate >= 2025-01-01 ORDER BY CloseDate DESC") == ["New", "Mid"]
    assert await names("WHERE IsClosed = true AND NOT (IsWon = true) ") == ["Mid"]
    assert await names("WHERE StageName IN ('closed won', 'Prospecting') ORDER BY Name") == ["New", "Old"]
    assert await names("WHERE Amount != null AND Amount > 5 ORDER BY Amount DESC") == ["Mid", "Old"]
    assert await names("ORDER BY Amount ASC NULLS LAST, Name") == ["Old", "Mid", "New"]
    assert await names("ORDER BY Amount DESC NULLS FIRST LIMIT 2 OFFSET 1") == ["Mid", "Old"]
    assert await names("WHERE CreatedDate = TODAY ORDER BY Name") == ["Mid", "New"]


async def test_batch_size_header_shrinks_pages_to_its_floor(sf: SalesforceApi, org: Org) -> None:
    org.page_size = 2000
    await sf.admin("POST", "/seed", json={"type": "Account", "records": [{"Name": f"A{n}"} for n in range(450)]})
    page = (await sf.get("/query", params={"q": "SELECT Id FROM Account"},
                         headers={"Sforce-Query-Options": "batchSize=100"})).json()
    assert len(page["records"]) == 200 and page["nextRecordsUrl"].endswith("-200")


# -- rows -------------------------------------------------------------------------------------------------------
async def test_row_get_with_fields_and_conditional_headers(sf: SalesforceApi, org: Org) -> None:
    account_id = await sf.create("Account", {"Name": "Cond"})
    contact_id = await sf.create("Contact", {"LastName": "C", "AccountId": account_id})
    row = (await sf.get(f"/sobjects/Contact/{contact_id}", params={"fields": "LastName,Account.Name"})).json()
    assert row["LastName"] == "C" and row["Account"]["Name"] == "Cond" and "Email" not in row
    later = http_datetime(datetime.now(UTC) + timedelta(minutes=1), usegmt=True)
    assert (await sf.get(f"/sobjects/Contact/{contact_id}", headers={"If-Modified-Since": later})).status_code == 304
    earlier = http_datetime(datetime.now(UTC) - timedelta(minutes=1), usegmt=True)
    stale = await sf.patch(f"/sobjects/Contact/{contact_id}", json={"Title": "x"},
                           headers={"If-Unmodified-Since": earlier})
    assert stale.status_code == 412
    fresh = await sf.patch(f"/sobjects/Contact/{contact_id}", json={"Title": "x"},
                           headers={"If-Unmodified-Since": later})
    assert fresh.status_code == 204


async def test_rest_upsert_created_updated_and_multiple(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/objects/Lead/fields", json={"name": "Src__c", "type": "string", "externalId": True})
    created = await sf.patch("/sobjects/Lead/Src__c/S-1", json={"LastName": "L", "Company": "C"})
    assert created.status_code == 201 and created.json()["created"] is True
    updated = await sf.patch("/sobjects/Lead/Src__c/S-1", json={"Company": "D"})
    assert updated.status_code == 200 and updated.json() == {"id": created.json()["id"], "success": True,
                                                             "errors": [], "created": False}
    await sf.create("Lead", {"LastName": "Twin", "Company": "C", "Src__c": "S-1"})
    multiple = await sf.patch("/sobjects/Lead/Src__c/S-1", json={"Company": "E"})
    assert multiple.status_code == 300 and len(multiple.json()) == 2
    assert (await sf.patch("/sobjects/Lead/Src__c/S-9", params={"updateOnly": "true"},
                           json={"Company": "E"})).status_code == 404


async def test_account_delete_cascades_to_its_current_children(sf: SalesforceApi) -> None:
    account_id = await sf.create("Account", {"Name": "Parent"})
    other_account = await sf.create("Account", {"Name": "Other"})
    contact_id = await sf.create("Contact", {"LastName": "Child", "AccountId": account_id})
    moved_id = await sf.create("Contact", {"LastName": "Moved", "AccountId": account_id})
    deal_id = await sf.create("Opportunity", {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-01",
                                              "AccountId": account_id})
    assert (await sf.patch(f"/sobjects/Contact/{moved_id}", json={"AccountId": other_account})).status_code == 204
    await sf.delete(f"/sobjects/Account/{account_id}")
    assert (await sf.get(f"/sobjects/Contact/{contact_id}")).json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert (await sf.get(f"/sobjects/Opportunity/{deal_id}")).json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert (await sf.get(f"/sobjects/Contact/{moved_id}")).status_code == 200


# -- collections and composite ----------------------------------------------------------------------------------
async def test_collection_update_upsert_retrieve_delete(sf: SalesforceApi) -> None:
    await sf.admin("POST", "/objects/Contact/fields", json={"name": "Key__c", "type": "string", "externalId": True})
    upserted = (await sf.patch("/composite/sobjects/Contact/Key__c", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "Key__c": "k1", "LastName": "One"},
        {"attributes": {"type": "Contact"}, "Key__c": "k2", "LastName": "Two"}]})).json()
    assert [result["created"] for result in upserted] == [True, True]
    again = (await sf.patch("/composite/sobjects/Contact/Key__c", json={"records": [
        {"attributes": {"type": "Contact"}, "Key__c": "k1", "LastName": "Uno"}]})).json()
    assert again[0]["created"] is False and again[0]["id"] == upserted[0]["id"]
    ids_ = [result["id"] for result in upserted]
    updated = (await sf.patch("/composite/sobjects", json={"records": [
        {"attributes": {"type": "Contact"}, "Id": ids_[1], "Title": "T"},
        {"attributes": {"type": "Contact"}, "Title": "no id"}]})).json()
    assert updated[0]["success"] is True and updated[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    retrieved = (await sf.post("/composite/sobjects/Contact", json={
        "ids": [*ids_, "003000000000000AAA"], "fields": ["LastName", "Title"]})).json()
    assert [row and row["LastName"] for row in retrieved] == ["Uno", "Two", None]
    assert retrieved[1]["Title"] == "T"
    deleted = (await sf.delete("/composite/sobjects", params={"ids": ",".join(ids_), "allOrNone": "true"})).json()
    assert all(result["success"] for result in deleted)


async def test_composite_limits_and_counts_as_one_call(sf: SalesforceApi, org: Org) -> None:
    too_many = [{"method": "GET", "url": f"{API}/limits", "referenceId": f"r{n}"} for n in range(26)]
    assert (await sf.post("/composite", json={"compositeRequest": too_many})).status_code == 400
    six_queries = [{"method": "GET", "url": f"{API}/query?q=SELECT+Id+FROM+Account", "referenceId": f"q{n}"}
                   for n in range(6)]
    assert (await sf.post("/composite", json={"compositeRequest": six_queries})).json()[0]["errorCode"] == \
        "LIMIT_EXCEEDED"
    assert (await sf.post("/composite", json={"compositeRequest": six_queries[:5]})).status_code == 200
    before = org.usage.per_token[sf.token]
    response = await sf.post("/composite", json={"compositeRequest": [
        {"method": "POST", "url": f"{API}/sobjects/Account", "referenceId": "acct", "body": {"Name": "Ref"}},
        {"method": "POST", "url": f"{API}/sobjects/Contact", "referenceId": "ct",
         "body": {"LastName": "Ref", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": f"{API}/query?q=SELECT+Id+FROM+Contact+WHERE+AccountId='@{{acct.id}}'",
         "referenceId": "q"},
        {"method": "PATCH", "url": f"{API}/sobjects/Contact/@{{q.records[0].Id}}", "referenceId": "upd",
         "body": {"Title": "Linked"}}]})
    statuses = [sub["httpStatusCode"] for sub in response.json()["compositeResponse"]]
    assert statuses == [201, 201, 200, 204]
    assert org.usage.per_token[sf.token] == before + 1


# -- replication and admin hooks --------------------------------------------------------------------------------
async def test_get_updated_and_deleted_follow_the_clock(sf: SalesforceApi, org: Org) -> None:
    start = org.clock.now().replace(second=0, microsecond=0)
    account_id = await sf.create("Account", {"Name": "Tracked"})
    doomed = await sf.create("Account", {"Name": "Doomed"})
    await sf.delete(f"/sobjects/Account/{doomed}")
    org.clock.advance(120)
    window = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
    updated = (await sf.get("/sobjects/Account/updated", params=window)).json()
    assert updated["ids"] == [account_id]
    deleted = (await sf.get("/sobjects/Account/deleted", params=window)).json()
    assert [entry["id"] for entry in deleted["deletedRecords"]] == [doomed]
    assert deleted["earliestDateAvailable"] <= deleted["deletedRecords"][0]["deletedDate"]
    org.clock.advance(16 * 86400)
    sf.token = await fetch_token(sf.client)  # sessions time out on the emulator's clock too
    old_window = {"start": (start + timedelta(days=2)).isoformat(), "end": org.clock.now().isoformat()}
    purged = (await sf.get("/sobjects/Account/deleted", params=old_window)).json()
    assert purged["deletedRecords"] == []
    assert parse_datetime(purged["earliestDateAvailable"]) > start
    org.clock.advance(15 * 86400)
    sf.token = await fetch_token(sf.client)
    too_old = {"start": start.isoformat(), "end": org.clock.now().isoformat()}
    assert (await sf.get("/sobjects/Account/updated", params=too_old)).json()[0]["errorCode"] == \
        "INVALID_REPLICATION_DATE"


async def test_changes_made_in_salesforce_by_another_user(sf: SalesforceApi, org: Org) -> None:
    contact_id = await sf.create("Contact", {"LastName": "Synced"})
    original = (await sf.get(f"/sobjects/Contact/{contact_id}")).json()
    org.clock.advance(5)
    await sf.admin("PATCH", f"/records/Contact/{contact_id}", json={"fields": {"Title": "Changed in SF"}})
    changed = (await sf.get(f"/sobjects/Contact/{contact_id}")).json()
    assert changed["LastModifiedById"] == org.store.admin_user_id != original["LastModifiedById"]
    assert changed["LastModifiedDate"] > original["LastModifiedDate"]
    org.clock.advance(5)
    await sf.admin("PATCH", f"/records/Contact/{contact_id}", json={"fields": {}, "systemOnly": True})
    touched = (await sf.get(f"/sobjects/Contact/{contact_id}")).json()
    assert touched["LastModifiedDate"] == changed["LastModifiedDate"]
    assert touched["SystemModstamp"] > changed["SystemModstamp"]


async def test_api_usage_is_counted_per_token(sf: SalesforceApi, http_client: httpx.AsyncClient) -> None:
    other = SalesforceApi(http_client, (await http_client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})).json()[
        "access_token"])
    for _ in range(3):
        await sf.get("/limits")
    await other.get("/limits/")
    usage = (await sf.admin("GET", "/api-usage")).json()
    assert usage["byToken"] == {sf.token: 3, other.token: 1} and usage["total"] == 4
    limits = (await sf.get("/limits")).json()
    assert limits["DailyApiRequests"]["Remaining"] == limits["DailyApiRequests"]["Max"] - 5


async def test_reset_forgets_records_and_sessions(sf: SalesforceApi) -> None:
    await sf.create("Account", {"Name": "Gone after reset"})
    await sf.admin("POST", "/reset")
    assert (await sf.get("/limits")).status_code == 401
    fresh = SalesforceApi(sf.client, (await sf.client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})).json()[
        "access_token"])
    assert (await fresh.query("SELECT COUNT() FROM Account")).json()["totalSize"] == 0


async def test_seeding_backdates_rows_from_one_date(sf: SalesforceApi, org: Org) -> None:
    seeded = (await sf.admin("POST", "/seed", json={"records": [
        {"attributes": {"type": "Contact"}, "LastName": "Old", "CreatedDate": "2024-01-01T08:00:00Z"}]})).json()
    row = (await sf.get(f"/sobjects/Contact/{seeded['ids'][0]}")).json()
    assert row["CreatedDate"] == row["LastModifiedDate"] == row["SystemModstamp"] == "2024-01-01T08:00:00.000+0000"
    assert row["CreatedById"] == org.store.admin_user_id
    old = (await sf.query("SELECT Id FROM Contact WHERE SystemModstamp < 2025-01-01T00:00:00Z")).json()
    assert [record["Id"] for record in old["records"]] == seeded["ids"]


async def test_client_credentials_refused_on_generic_login_host(http_client: httpx.AsyncClient) -> None:
    response = await http_client.post("https://login.salesforce.com/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert response.json() == {"error": "invalid_grant", "error_description": "request not supported on this domain"}


async def test_offset_beyond_2000_is_out_of_range(sf: SalesforceApi) -> None:
    response = await sf.query("SELECT Id FROM Account LIMIT 10 OFFSET 2001")
    assert response.status_code == 400 and response.json()[0]["errorCode"] == "NUMBER_OUTSIDE_VALID_RANGE"
    assert (await sf.query("SELECT Id FROM Account LIMIT 10 OFFSET 2000")).status_code == 200


async def test_per_app_usage_is_reported_when_capped() -> None:
    app = create_app(EmulatorSettings(per_app_api_requests=250, daily_api_requests=1000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        sf = SalesforceApi(client, await fetch_token(client))
        await sf.get("/limits")
        response = await sf.get("/limits")
        assert response.headers["Sforce-Limit-Info"] == "api-usage=2/1000;per-app-api-usage=2/250(appName=Corral)"
        assert response.json()["DailyApiRequests"]["Corral"] == {"Max": 250, "Remaining": 248}


def test_concurrent_upserts_from_threads_create_one_row(org: Org) -> None:
    org.store.define_field("Contact", {"name": "Ext__c", "type": "string", "externalId": True, "unique": True})
    contact = org.store.require_object("Contact")

    def upsert(number: int) -> bool:
        return org.store.upsert(contact, "Ext__c", "SAME", {"LastName": f"Writer {number}"}, user_id=None)[1]

    with ThreadPoolExecutor(max_workers=8) as pool:
        created_flags = list(pool.map(upsert, range(64)))
    assert created_flags.count(True) == 1
    assert len(org.store.find_by_field(contact, "Ext__c", "same")) == 1
    assert sum(1 for record in org.store.by_type["Contact"].values() if record["Ext__c"] == "SAME") == 1


async def test_userinfo_names_the_session_user(sf: SalesforceApi, org: Org) -> None:
    info = (await sf.client.get("/services/oauth2/userinfo", headers=sf.headers())).json()
    assert info["user_id"] == org.store.integration_user_id
    assert info["preferred_username"] == "integration@corral-emulator.example"
    assert (await sf.client.get("/services/oauth2/userinfo")).status_code == 403


async def test_composite_subrequests_must_target_the_data_api(sf: SalesforceApi) -> None:
    for bad in ({"method": "POST", "url": "/__emulator__/reset", "referenceId": "r"}, "not an object"):
        response = await sf.post("/composite", json={"compositeRequest": [bad]})
        assert response.status_code == 400 and response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


async def test_admin_rejects_malformed_requests_with_400(sf: SalesforceApi) -> None:
    for method, path, body in [("POST", "/clock/set", {}), ("PUT", "/limits", {"pageSize": "many"}),
                               ("POST", "/faults", {"kind": "EARTHQUAKE"}), ("POST", "/objects", {"name": "NoSuffix"})]:
        response = await sf.client.request(method, f"/__emulator__{path}", json=body)
        assert response.status_code == 400, (path, response.text)


async def test_child_relationship_subqueries(sf: SalesforceApi, org: Org) -> None:
    org.page_size = 2000
    await sf.admin("POST", "/objects", json={"name": "Invoice__c", "fields": [
        {"name": "Account__c", "type": "reference", "referenceTo": ["Account"]}]})
    acme = await sf.create("Account", {"Name": "Acme"})
    await sf.create("Account", {"Name": "Empty"})
    for last_name in ("Cole", "Adams", "Baker"):
        await sf.create("Contact", {"LastName": last_name, "AccountId": acme})
    await sf.create("Invoice__c", {"Name": "INV-1", "Account__c": acme})
    response = await sf.query("SELECT Name, (SELECT LastName FROM Contacts WHERE LastName != 'Baker' "
                              "ORDER BY LastName), (SELECT Name FROM Invoices__r) FROM Account ORDER BY Name")
    assert response.status_code == 200, response.text
    acme_row, empty_row = response.json()["records"]
    assert [child["LastName"] for child in acme_row["Contacts"]["records"]] == ["Adams", "Cole"]
    assert acme_row["Contacts"]["totalSize"] == 2 and acme_row["Contacts"]["done"] is True
    assert acme_row["Invoices__r"]["records"][0]["attributes"]["type"] == "Invoice__c"
    assert empty_row["Contacts"] is None and empty_row["Invoices__r"] is None
    unknown = await sf.query("SELECT Id, (SELECT Id FROM Bogus) FROM Account")
    assert unknown.json()[0]["errorCode"] == "INVALID_TYPE"


async def test_account_etags_guard_reads_and_writes(sf: SalesforceApi) -> None:
    account_id = await sf.create("Account", {"Name": "Tagged"})
    first = await sf.get(f"/sobjects/Account/{account_id}")
    etag = first.headers["ETag"]
    assert (await sf.get(f"/sobjects/Account/{account_id}", headers={"If-None-Match": etag})).status_code == 304
    assert (await sf.patch(f"/sobjects/Account/{account_id}", json={"Site": "HQ"},
                           headers={"If-Match": etag})).status_code == 204
    stale = await sf.patch(f"/sobjects/Account/{account_id}", json={"Site": "Branch"}, headers={"If-Match": etag})
    assert stale.status_code == 412 and stale.json()[0]["errorCode"] == "PRECONDITION_FAILED"
    assert (await sf.get(f"/sobjects/Account/{account_id}")).headers["ETag"] != etag
    contact_id = await sf.create("Contact", {"LastName": "No tag"})
    assert "ETag" not in (await sf.get(f"/sobjects/Contact/{contact_id}")).headers


async def test_aggregate_functions_and_group_by(sf: SalesforceApi, org: Org) -> None:
    org.page_size = 2000
    deals = [("Prospecting", 10), ("Prospecting", 30), ("Closed Won", 100), ("Closed Won", None)]
    for number, (stage, amount) in enumerate(deals):
        await sf.post("/sobjects/Opportunity", json={"Name": f"D{number}", "StageName": stage,
                                                     "CloseDate": "2026-12-01", "Amount": amount})
    response = await sf.query("SELECT StageName, COUNT(Id) deals, SUM(Amount), AVG(Amount), MAX(Name) "
                              "FROM Opportunity GROUP BY StageName ORDER BY StageName")
    assert response.status_code == 200, response.text
    assert response.json()["records"] == [
        {"attributes": {"type": "AggregateResult"}, "StageName": "Closed Won", "deals": 2, "expr0": 100,
         "expr1": 100.0, "expr2": "D3"},
        {"attributes": {"type": "AggregateResult"}, "StageName": "Prospecting", "deals": 2, "expr0": 40,
         "expr1": 20.0, "expr2": "D1"},
    ]
    total = (await sf.query("SELECT COUNT(Id), MIN(CloseDate) FROM Opportunity WHERE Amount = null")).json()
    assert total["totalSize"] == 1 and total["records"][0]["expr0"] == 1
    assert total["records"][0]["expr1"] == "2026-12-01"
    ungrouped = await sf.query("SELECT Name, COUNT(Id) FROM Opportunity GROUP BY StageName")
    assert ungrouped.json()[0]["errorCode"] == "MALFORMED_QUERY"
    assert "Field must be grouped or aggregated: Name" in ungrouped.json()[0]["message"]
    text_sum = await sf.query("SELECT SUM(Name) FROM Opportunity")
    assert text_sum.json()[0]["errorCode"] == "INVALID_FIELD"

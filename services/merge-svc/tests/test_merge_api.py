"""Merging through merge-svc against the real records-svc: every rule, ids, events, errors, limits."""

from __future__ import annotations

from typing import Any

import httpx

from .helpers import make, merge, next_event, read, set_by, subscribed

CONTACT_PROPS = ("email", "hs_additional_emails", "firstname", "lastname", "jobtitle", "createdate",
                 "lifecyclestage", "num_conversion_events", "num_unique_conversion_events",
                 "hs_analytics_num_page_views", "hs_analytics_num_visits", "hs_analytics_num_event_completions",
                 "hs_marketable_status", "hs_analytics_source", "hs_analytics_source_data_1",
                 "hs_analytics_source_data_2", "hs_legal_basis", "hs_merged_object_ids")


async def test_merge_two_contacts_follows_every_rule(merges: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    primary = await make(records, "contacts", email="pat@example.com", hs_additional_emails="pat@home.example",
                         firstname="Pat", jobtitle="", createdate="2024-05-01T00:00:00Z", lifecyclestage="lead",
                         num_conversion_events="2", num_unique_conversion_events="1",
                         hs_analytics_num_page_views="10", hs_analytics_num_visits="4",
                         hs_marketable_status="false", hs_legal_basis="Performance of a contract")
    secondary = await make(records, "contacts", email="sam@example.com", hs_additional_emails="sam@home.example",
                           firstname="Sam", lastname="Lee", jobtitle="CTO", createdate="2021-01-01T00:00:00Z",
                           lifecyclestage="customer", num_conversion_events="3", num_unique_conversion_events="2",
                           hs_analytics_num_page_views="5", hs_analytics_num_visits="1",
                           hs_analytics_num_event_completions="7", hs_marketable_status="true",
                           hs_legal_basis="Freely given consent from contact")
    # Tracked (not hand-set) sources: the one first seen earlier, the secondary's, wins with its drill-downs.
    await set_by(records, "contacts", primary, "ANALYTICS", hs_analytics_source="PAID_SEARCH",
                 hs_analytics_source_data_1="google", hs_analytics_first_timestamp="2024-05-01T00:00:00Z")
    await set_by(records, "contacts", secondary, "ANALYTICS", hs_analytics_source="ORGANIC_SEARCH",
                 hs_analytics_source_data_2="bing", hs_analytics_first_timestamp="2021-01-01T00:00:00Z")

    async with subscribed("record.merged") as queue:
        response = await merge(merges, "contacts", primary, secondary)
        assert response.status_code == 200, response.text
        body = response.json()
        new_id = body["id"]
        assert new_id not in (primary, secondary)
        assert {"id", "properties", "createdAt", "updatedAt", "archived"} <= set(body)
        event = await next_event(queue, {"id": new_id})

    merged = (await read(records, "contacts", new_id, *CONTACT_PROPS))["properties"]
    assert merged["email"] == "pat@example.com"
    assert sorted(merged["hs_additional_emails"].split(";")) == ["pat@home.example", "sam@example.com",
                                                                 "sam@home.example"]
    assert (merged["firstname"], merged["lastname"], merged["jobtitle"]) == ("Pat", "Lee", "CTO")
    assert merged["createdate"].startswith("2021-01-01T00:00:00")
    assert merged["lifecyclestage"] == "customer"
    assert (merged["num_conversion_events"], merged["num_unique_conversion_events"]) == ("5", "3")
    assert (merged["hs_analytics_num_page_views"], merged["hs_analytics_num_visits"],
            merged["hs_analytics_num_event_completions"]) == ("15", "5", "7")
    assert merged["hs_marketable_status"] == "true"
    assert (merged["hs_analytics_source"], merged["hs_analytics_source_data_1"],
            merged["hs_analytics_source_data_2"]) == ("ORGANIC_SEARCH", None, "bing")
    assert set(merged["hs_legal_basis"].split(";")) == {"Performance of a contract",
                                                        "Freely given consent from contact"}
    assert sorted(merged["hs_merged_object_ids"].split(";")) == sorted([primary, secondary])

    for old in (primary, secondary):
        assert (await read(records, "contacts", old, "email"))["id"] == new_id
    by_old_email = await records.get("/crm/v3/objects/contacts/sam@example.com", params={"idProperty": "email"})
    assert by_old_email.json()["id"] == new_id

    data = event["data"]
    assert event["type"] == "record.merged" and event["source"] == "merge-svc"
    assert (data["objectType"], data["objectTypeId"], data["primaryId"], data["keepSyncing"]) == \
        ("contacts", "0-1", primary, primary)
    assert sorted(data["mergedIds"]) == sorted([primary, secondary])

    history = (await merges.get("/corral/v1/merges", params={"objectType": "contacts", "recordId": primary})).json()
    assert [m["mergedObjectId"] for m in history["results"]] == [new_id]
    one = (await merges.get(f"/corral/v1/merges/{data['mergeId']}")).json()
    assert (one["status"], one["primaryObjectId"], one["objectIdToMerge"]) == ("APPLIED", primary, secondary)
    assert one["decisions"]["lastname"] == "SECONDARY" and one["decisions"]["firstname"] == "PRIMARY"


async def test_source_set_by_hand_on_the_primary_is_kept(merges: httpx.AsyncClient,
                                                         records: httpx.AsyncClient) -> None:
    primary = await make(records, "contacts", email="hand@example.com", hs_analytics_source="OFFLINE",
                         createdate="2024-01-01T00:00:00Z")
    secondary = await make(records, "contacts", email="tracked@example.com", createdate="2020-01-01T00:00:00Z")
    await set_by(records, "contacts", secondary, "ANALYTICS", hs_analytics_source="REFERRALS")
    response = await merge(merges, "contacts", primary, secondary)
    assert response.status_code == 200, response.text
    merged = await read(records, "contacts", response.json()["id"], "hs_analytics_source")
    assert merged["properties"]["hs_analytics_source"] == "OFFLINE"


async def test_properties_to_keep_chooses_the_secondarys_values(merges: httpx.AsyncClient,
                                                                records: httpx.AsyncClient) -> None:
    primary = await make(records, "contacts", email="keep-p@example.com", firstname="Pat", city="Oslo")
    secondary = await make(records, "contacts", email="keep-s@example.com", firstname="Sam", city="Rome")
    response = await merge(merges, "contacts", primary, secondary, firstname="SECONDARY", email="SECONDARY")
    assert response.status_code == 200, response.text
    merged = (await read(records, "contacts", response.json()["id"], "email", "hs_additional_emails", "firstname",
                         "city"))["properties"]
    assert (merged["firstname"], merged["city"]) == ("Sam", "Oslo")
    assert (merged["email"], merged["hs_additional_emails"]) == ("keep-s@example.com", "keep-p@example.com")


async def test_merge_two_companies_follows_every_rule(merges: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    primary = await make(records, "companies", name="Acme", domain="acme.com", hs_additional_domains="acme.io",
                         lifecyclestage="lead", hs_analytics_num_page_views="3", hs_analytics_num_visits="2",
                         createdate="2023-01-01T00:00:00Z")
    secondary = await make(records, "companies", name="Acme GmbH", domain="acme.de", industry="Retail",
                           lifecyclestage="opportunity", hs_analytics_num_page_views="4",
                           hs_analytics_num_visits="6", createdate="2019-01-01T00:00:00Z")
    await set_by(records, "companies", primary, "ANALYTICS", hs_analytics_source="DIRECT_TRAFFIC")
    await set_by(records, "companies", secondary, "ANALYTICS", hs_analytics_source="REFERRALS",
                 hs_analytics_source_data_1="partner.example")
    nameless = await make(records, "companies", name="No Domain Inc")
    other = await make(records, "companies", name="Other", domain="other.example")

    async with subscribed("record.merged") as queue:
        response = await merge(merges, "companies", primary, secondary)
        assert response.status_code == 200, response.text
        new_id = response.json()["id"]
        event = await next_event(queue, {"id": new_id})
    assert event["data"]["objectTypeId"] == "0-2"
    merged = (await read(records, "companies", new_id, "name", "domain", "hs_additional_domains", "industry",
                         "lifecyclestage", "hs_analytics_num_page_views", "hs_analytics_num_visits",
                         "hs_analytics_source", "hs_analytics_source_data_1", "createdate"))["properties"]
    assert (merged["name"], merged["domain"], merged["industry"]) == ("Acme", "acme.com", "Retail")
    assert sorted(merged["hs_additional_domains"].split(";")) == ["acme.de", "acme.io"]
    assert merged["lifecyclestage"] == "opportunity"
    assert (merged["hs_analytics_num_page_views"], merged["hs_analytics_num_visits"]) == ("7", "8")
    assert (merged["hs_analytics_source"], merged["hs_analytics_source_data_1"]) == ("REFERRALS", "partner.example")
    assert merged["createdate"].startswith("2019-01-01")
    for old in (primary, secondary):
        assert (await read(records, "companies", old, "name"))["id"] == new_id

    # A primary without a domain takes the secondary's as its domain.
    response = await merge(merges, "companies", nameless, other)
    assert response.status_code == 200, response.text
    merged = (await read(records, "companies", response.json()["id"], "domain", "hs_additional_domains"))["properties"]
    assert (merged["domain"], merged["hs_additional_domains"]) == ("other.example", None)


async def test_preview_shows_the_result_without_merging(merges: httpx.AsyncClient,
                                                        records: httpx.AsyncClient) -> None:
    primary = await make(records, "contacts", email="pv-p@example.com", lifecyclestage="lead")
    secondary = await make(records, "contacts", email="pv-s@example.com", lifecyclestage="customer", city="Oslo")
    response = await merges.post("/corral/v1/merges/preview", json={
        "objectType": "contacts", "primaryObjectId": primary, "objectIdToMerge": secondary})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["properties"]["lifecyclestage"] == "customer"
    assert preview["properties"]["hs_additional_emails"] == "pv-s@example.com"
    assert preview["decisions"]["city"] == "SECONDARY" and preview["mergesInvolved"] == 1
    for record_id in (primary, secondary):
        assert (await read(records, "contacts", record_id, "email"))["id"] == record_id
    listing = await merges.get("/corral/v1/merges", params={"recordId": primary})
    assert listing.json()["results"] == []


async def test_invalid_merges_are_refused_with_the_cause(merges: httpx.AsyncClient, records: httpx.AsyncClient,
                                                         merge_app: Any, account_id: int) -> None:
    contact = await make(records, "contacts", email="err-1@example.com")
    other = await make(records, "contacts", email="err-2@example.com")
    company = await make(records, "companies", name="Err Co")

    def expect(response: httpx.Response, status: int, fragment: str) -> None:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["status"] == "error" and body["correlationId"] and body["category"]
        assert fragment in body["message"], body["message"]

    expect(await merge(merges, "contacts", contact, contact), 400, "cannot be merged with itself")
    expect(await merge(merges, "contacts", contact, "999999999"), 404, "999999999")
    expect(await merge(merges, "contacts", contact, company), 404, "same object type")
    expect(await merge(merges, "contacts", "abc", contact), 400, "primaryObjectId")
    expect(await merges.post("/crm/v3/objects/contacts/merge", json={"primaryObjectId": contact}), 400,
           "objectIdToMerge")

    archived = await make(records, "contacts", email="err-3@example.com")
    assert (await records.delete(f"/crm/v3/objects/contacts/{archived}")).status_code == 204
    expect(await merge(merges, "contacts", contact, archived), 409, "archived")

    # Another account's record does not exist for this one.
    from crm_common.testing import signed_headers

    stranger = await records.post("/crm/v3/objects/contacts", json={"properties": {"email": "err-x@example.com"}},
                                  headers=signed_headers(account_id + 500_000))
    expect(await merge(merges, "contacts", contact, stranger.json()["id"]), 404, stranger.json()["id"])

    done = await merge(merges, "contacts", contact, other)
    assert done.status_code == 200
    expect(await merge(merges, "contacts", contact, await make(records, "contacts", email="err-4@example.com")),
           409, f"already merged into {done.json()['id']}")
    nothing_recorded = await merges.get("/corral/v1/merges", params={"recordId": company})
    assert nothing_recorded.json()["results"] == []


async def test_companies_cannot_be_merged_while_salesforce_company_sync_is_on(
        merges: httpx.AsyncClient, records: httpx.AsyncClient, merge_app: Any) -> None:
    from crm_common.http import ServiceClient
    from crm_common.contracts.sync import SyncClient

    first = await make(records, "companies", name="Sync A")
    second = await make(records, "companies", name="Sync B")
    contact_a = await make(records, "contacts", email="sync-a@example.com")
    contact_b = await make(records, "contacts", email="sync-b@example.com")
    asked: list[str] = []

    def sync_on(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["objectType"])
        return httpx.Response(200, json={"objectType": request.url.params["objectType"], "syncEnabled": True})

    resources = merge_app.runtime.resources
    real = resources.sync
    resources.sync = SyncClient(ServiceClient(base_url="http://sync", secret="x", caller="merge-svc",
                                              transport=httpx.MockTransport(sync_on)))
    try:
        refused = await merge(merges, "companies", first, second)
        assert refused.status_code == 409, refused.text
        assert "Salesforce" in refused.json()["message"]
        assert asked == ["companies"]
        # Contacts do not depend on company sync.
        assert (await merge(merges, "contacts", contact_a, contact_b)).status_code == 200
    finally:
        resources.sync = real
    assert (await read(records, "companies", first, "name"))["id"] == first
    assert (await merge(merges, "companies", first, second)).status_code == 200


async def test_company_merges_fail_closed_when_sync_status_is_unknown(
        merges: httpx.AsyncClient, records: httpx.AsyncClient, merge_app: Any) -> None:
    from crm_common.http import ServiceClient
    from crm_common.contracts.sync import SyncClient

    first = await make(records, "companies", name="Dark A")
    second = await make(records, "companies", name="Dark B")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    resources = merge_app.runtime.resources
    real = resources.sync
    resources.sync = SyncClient(ServiceClient(base_url="http://sync", secret="x", caller="merge-svc",
                                              transport=httpx.MockTransport(unreachable)))
    try:
        refused = await merge(merges, "companies", first, second)
    finally:
        resources.sync = real
    assert refused.status_code == 503, refused.text
    assert "sync status could not be checked" in refused.json()["message"]


async def test_a_merge_records_svc_refuses_is_kept_as_failed(merges: httpx.AsyncClient,
                                                             records: httpx.AsyncClient, merge_app: Any,
                                                             records_app: Any) -> None:
    """records-svc has the last word (here: it answers 409 as if a record changed under the merge)."""
    from crm_common.http import ServiceClient
    from crm_common.contracts.records import RecordsClient

    primary = await make(records, "contacts", email="fail-p@example.com")
    secondary = await make(records, "contacts", email="fail-s@example.com")
    inner = httpx.ASGITransport(app=records_app)

    class RefusingApply(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/internal/v1/merges/apply":
                return httpx.Response(409, json={"status": "error", "category": "CONFLICT", "correlationId": "x",
                                                 "message": "contact 1 was already merged into 2"})
            return await inner.handle_async_request(request)

    resources = merge_app.runtime.resources
    real = resources.records
    resources.records = RecordsClient(ServiceClient(base_url="http://records",
                                                    secret=merge_app.runtime.settings.internal_secret,
                                                    caller="merge-svc", transport=RefusingApply()))
    try:
        refused = await merge(merges, "contacts", primary, secondary)
    finally:
        resources.records = real
    assert refused.status_code == 409 and "already merged" in refused.json()["message"]
    history = (await merges.get("/corral/v1/merges", params={"recordId": primary})).json()["results"]
    assert [(m["status"], m["error"]) for m in history] == [("FAILED", "contact 1 was already merged into 2")]
    # Nothing was applied, and the records can still be merged.
    assert (await read(records, "contacts", primary, "email"))["id"] == primary
    assert (await merge(merges, "contacts", primary, secondary)).status_code == 200

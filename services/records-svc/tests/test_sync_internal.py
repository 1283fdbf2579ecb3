"""What the Salesforce sync needs from records-svc: its read-only id properties (written by sync-svc only, and
searchable), records read with each property's last change, and records found by a property value."""

from __future__ import annotations

import httpx
from crm_common.testing import signed_headers


def as_service(account_id: int, caller: str) -> dict[str, str]:
    return signed_headers(account_id, caller=caller)


async def bulk(api: httpx.AsyncClient, account_id: int, caller: str, rows: list[dict], **kw: object) -> dict:
    response = await api.post("/internal/v1/records/contacts/bulk-upsert", headers=as_service(account_id, caller),
                              json={"operation": "UPSERT", "idProperty": "email", "sourceType": "SALESFORCE",
                                    "rows": [{"ref": i, "properties": r} for i, r in enumerate(rows)], **kw})
    assert response.status_code == 200, response.text
    return response.json()


async def test_salesforce_ids_are_written_by_the_sync_only(api: httpx.AsyncClient, account_id: int) -> None:
    refused = await api.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "a@example.com", "salesforcecontactid": "003000000000001AAA"}})
    assert refused.status_code == 400 and "salesforcecontactid" in refused.text
    imported = await bulk(api, account_id, "import-svc", [{"email": "a@example.com",
                                                           "salesforcecontactid": "003000000000001AAA"}])
    [row] = imported["results"]
    assert row["errors"][0]["code"] == "READ_ONLY_VALUE" and "sync-svc" in row["errors"][0]["message"]
    synced = await bulk(api, account_id, "sync-svc", [{"email": "a@example.com",
                                                       "salesforcecontactid": "003000000000001AAA",
                                                       "salesforcelastsynctime": "2026-01-01T10:00:00Z"}])
    assert synced["results"][0]["errors"] == []
    found = await api.post("/crm/v3/objects/contacts/search", json={
        "filterGroups": [{"filters": [{"propertyName": "salesforcecontactid", "operator": "EQ",
                                       "value": "003000000000001AAA"}]}], "properties": ["salesforcecontactid"]})
    assert found.json()["total"] == 1
    definition = (await api.get("/crm/v3/properties/contacts/salesforcecontactid")).json()
    assert definition["modificationMetadata"]["readOnlyValue"] is True
    assert definition["groupName"] == "salesforceinformation"
    history = (await api.get(f"/crm/v3/objects/contacts/{synced['results'][0]['id']}",
                             params={"propertiesWithHistory": "salesforcecontactid"})).json()
    assert history["propertiesWithHistory"]["salesforcecontactid"][0]["sourceType"] == "SALESFORCE"


async def test_read_with_changes_gives_each_property_its_last_change(api: httpx.AsyncClient, account_id: int) -> None:
    created = (await api.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "b@example.com", "firstname": "Bea", "jobtitle": "CTO"}})).json()
    await bulk(api, account_id, "sync-svc", [{"email": "b@example.com", "jobtitle": "CEO"}])
    bulk_created = await bulk(api, account_id, "import-svc", [{"email": "c@example.com", "firstname": "Cy"}])
    response = await api.post("/internal/v1/records/contacts/read-with-changes", json={
        "ids": [created["id"], bulk_created["results"][0]["id"], "999999999"],
        "properties": ["firstname", "jobtitle", "city"]})
    assert response.status_code == 200, response.text
    by_id = {r["id"]: r for r in response.json()["results"]}
    assert set(by_id) == {created["id"], bulk_created["results"][0]["id"]}
    first = by_id[created["id"]]
    assert first["properties"] == {"firstname": "Bea", "jobtitle": "CEO"}
    assert first["changes"]["jobtitle"]["sourceType"] == "SALESFORCE"
    assert first["changes"]["firstname"]["sourceType"] == "API"
    assert first["changes"]["jobtitle"]["timestamp"] >= first["changes"]["firstname"]["timestamp"]
    assert "city" not in first["changes"] and first["archived"] is False and first["mergedInto"] is None
    # Created in bulk: the creation source stands for every value it has not changed since.
    second = by_id[bulk_created["results"][0]["id"]]
    assert second["changes"]["firstname"]["sourceType"] == "SALESFORCE"


async def test_find_by_email_and_by_salesforce_id(api: httpx.AsyncClient, account_id: int) -> None:
    written = await bulk(api, account_id, "sync-svc", [
        {"email": "d@example.com", "salesforcecontactid": "003000000000002AAA"},
        {"email": "e@example.com", "hs_additional_emails": "e2@example.com"}])
    d_id, e_id = (r["id"] for r in written["results"])
    by_email = (await api.post("/internal/v1/records/contacts/find", json={
        "property": "email", "values": ["D@Example.com", "e2@example.com", "nobody@example.com"]})).json()
    assert by_email["matches"] == {"d@example.com": [d_id], "e2@example.com": [e_id]}
    by_link = (await api.post("/internal/v1/records/contacts/find", json={
        "property": "salesforcecontactid", "values": ["003000000000002AAA", "003000000000009AAA"]})).json()
    assert by_link["matches"] == {"003000000000002aaa": [d_id]}
    await api.delete(f"/crm/v3/objects/contacts/{d_id}")
    gone = (await api.post("/internal/v1/records/contacts/find", json={
        "property": "salesforcecontactid", "values": ["003000000000002AAA"]})).json()
    assert gone["matches"] == {}
    unknown = await api.post("/internal/v1/records/contacts/find", json={"property": "nope", "values": ["x"]})
    assert unknown.status_code == 400

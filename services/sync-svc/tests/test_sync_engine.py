"""The engine: Corral changes to Salesforce and back, links, matching, echoes, merges."""

from __future__ import annotations

import httpx

from .helpers import admin, connect_and_start, queued, run, sf_query, wait_queued

BASE = "/corral/v1/salesforce"
CONTACT_FIELDS = "Id, Email, FirstName, LastName, Title, Phone, LastModifiedDate, SystemModstamp"


async def create_contact(records: httpx.AsyncClient, **properties: str) -> str:
    response = await records.post("/crm/v3/objects/contacts", json={"properties": properties})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def contact(records: httpx.AsyncClient, record_id: str, *names: str, history: str = "") -> dict:
    params = {"properties": ",".join(names)}
    if history:
        params["propertiesWithHistory"] = history
    response = await records.get(f"/crm/v3/objects/contacts/{record_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def flushed(sync: httpx.AsyncClient, count: int = 1) -> dict:
    """A cycle once the consumer has queued the `count` records just changed."""
    await wait_queued(sync, count)
    return await run(sync)


async def test_contact_created_in_corral_appears_in_salesforce_linked(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    record_id = await create_contact(records, email="ada@example.com", firstname="Ada", lastname="Lovelace",
                                     jobtitle="Analyst")
    summary = await flushed(sync)
    assert summary["outbound"]["contacts"]["created"] == 1
    [row] = await sf_query(salesforce, f"SELECT {CONTACT_FIELDS} FROM Contact")
    assert (row["Email"], row["FirstName"], row["LastName"], row["Title"]) == ("ada@example.com", "Ada", "Lovelace",
                                                                                "Analyst")
    linked = await contact(records, record_id, "salesforcecontactid", "salesforcelastsynctime")
    assert linked["properties"]["salesforcecontactid"] == row["Id"]
    assert linked["properties"]["salesforcelastsynctime"]
    # The link property's own record.updated event is an echo (source SALESFORCE): nothing is queued again.
    assert (await run(sync))["outbound"] == {}
    assert await queued(sync) == 0


async def test_salesforce_change_by_a_person_comes_back_with_source_salesforce(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    record_id = await create_contact(records, email="bo@example.com", lastname="Bo")
    await flushed(sync)
    [row] = await sf_query(salesforce, "SELECT Id FROM Contact")
    await admin(salesforce, "PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Title": "VP", "Phone": "555"}})
    summary = await run(sync)
    assert summary["inbound"].get("contacts", {}).get("updated") == 1, summary
    after = await contact(records, record_id, "jobtitle", "phone", history="jobtitle")
    assert after["properties"]["jobtitle"] == "VP" and after["properties"]["phone"] == "555"
    assert after["propertiesWithHistory"]["jobtitle"][0]["sourceType"] == "SALESFORCE"
    # The change we wrote into Corral is not sent back to Salesforce.
    before = (await sf_query(salesforce, f"SELECT {CONTACT_FIELDS} FROM Contact"))[0]
    assert await queued(sync) == 0
    await run(sync)
    assert (await sf_query(salesforce, f"SELECT {CONTACT_FIELDS} FROM Contact"))[0]["LastModifiedDate"] \
        == before["LastModifiedDate"]


async def test_new_salesforce_records_after_start_come_in_older_ones_do_not(sync, records, salesforce):
    await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": "Old", "Email": "old@example.com"}})
    # The org's clock (its Date header) has whole seconds: "before the start" means a second or more before.
    await admin(salesforce, "POST", "/clock/advance", json={"seconds": 2})
    await connect_and_start(sync, ("contacts", "Contact"), ("companies", "Account"))
    await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": "New", "Email": "new@example.com"}})
    await admin(salesforce, "POST", "/records/Account", json={"fields": {"Name": "Acme"}})
    summary = await run(sync)
    assert summary["inbound"]["contacts"]["created"] == 1 and summary["inbound"]["companies"]["created"] == 1
    found = (await records.post("/crm/v3/objects/contacts/search", json={"properties": ["email", "lastname"]})).json()
    assert [r["properties"]["email"] for r in found["results"]] == ["new@example.com"]
    company = (await records.post("/crm/v3/objects/companies/search", json={
        "properties": ["name", "salesforceaccountid"]})).json()["results"][0]
    [account] = await sf_query(salesforce, "SELECT Id FROM Account")
    assert company["properties"]["salesforceaccountid"] == account["Id"]


async def test_existing_salesforce_contact_is_linked_by_email_not_duplicated(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await admin(salesforce, "POST", "/seed", json={"type": "Contact", "records": [
        {"LastName": "Existing", "Email": "SAME@example.com", "Title": "Boss",
         "SystemModstamp": "2020-01-01T00:00:00Z", "LastModifiedDate": "2020-01-01T00:00:00Z"}]})
    record_id = await create_contact(records, email="same@example.com", lastname="Mine", jobtitle="")
    summary = await flushed(sync)
    assert summary["outbound"]["contacts"] == {"linked": 1}
    rows = await sf_query(salesforce, f"SELECT {CONTACT_FIELDS} FROM Contact")
    assert len(rows) == 1
    after = await contact(records, record_id, "lastname", "jobtitle", "salesforcecontactid")
    # Prefer-Salesforce fields take Salesforce's values; the link is stored.
    assert after["properties"]["lastname"] == "Existing" and after["properties"]["jobtitle"] == "Boss"
    assert after["properties"]["salesforcecontactid"] == rows[0]["Id"]


async def test_idle_cycles_cost_one_call_and_change_nothing(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"), ("companies", "Account"))
    record_id = await create_contact(records, email="idle@example.com", lastname="Idle")
    await flushed(sync)
    await run(sync)
    before = await sf_query(salesforce, f"SELECT {CONTACT_FIELDS} FROM Contact")
    history = await contact(records, record_id, "lastname", history="lastname,salesforcelastsynctime")
    await admin(salesforce, "POST", "/clock/advance", json={"minutes": 2})
    calls = []
    for _ in range(10):
        calls.append((await run(sync))["apiCalls"])
    assert max(calls) <= 2 * 2, calls  # at most 2 calls per enabled object per cycle (here 1 in all)
    assert sum(calls) <= 10, calls
    assert await sf_query(salesforce, f"SELECT {CONTACT_FIELDS} FROM Contact") == before
    assert await contact(records, record_id, "lastname", history="lastname,salesforcelastsynctime") == history


async def test_contact_merge_keeps_the_primarys_link(sync, sync_app, records, salesforce, account_id):
    await connect_and_start(sync, ("contacts", "Contact"))
    primary = await create_contact(records, email="p@example.com", lastname="Primary")
    secondary = await create_contact(records, email="s@example.com", lastname="Secondary")
    await flushed(sync, 2)
    rows = {r["Email"]: r["Id"] for r in await sf_query(salesforce, "SELECT Id, Email FROM Contact")}
    from crm_common.cloudevents import CloudEvent
    from sync_svc.engine.changes import handle_changes

    merged = await records.post("/internal/v1/merges/apply", json={
        "mergeId": "m1", "objectType": "contacts", "primaryId": primary, "secondaryId": secondary,
        "properties": {"email": "p@example.com", "lastname": "Primary", "hs_additional_emails": "s@example.com"}})
    assert merged.status_code == 200, merged.text
    new_id = merged.json()["id"]
    event = CloudEvent(source="merge-svc", type="record.merged", corralaccount=account_id, data={
        "objectType": "contacts", "objectTypeId": "0-1", "id": new_id, "primaryId": primary,
        "secondaryId": secondary, "mergedIds": [primary, secondary]})
    async with sync_app.runtime.sessionmaker() as db, db.begin():
        await handle_changes(db, [event])
    await run(sync)
    after = await contact(records, new_id, "salesforcecontactid")
    assert after["properties"]["salesforcecontactid"] == rows["p@example.com"]
    # The secondary's Salesforce record stays, unlinked: a change to it is no longer pulled.
    await admin(salesforce, "PATCH", f"/records/Contact/{rows['s@example.com']}", json={"fields": {"Title": "Gone"}})
    summary = await run(sync)
    assert summary["inbound"].get("contacts", {}).get("updated", 0) == 0


async def test_an_object_enabled_again_starts_from_then(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": "Before", "Email": "b@x.com"}})
    await run(sync)
    assert (await sync.put(f"{BASE}/objects/contacts", json={"salesforceObject": "Contact", "enabled": False})
            ).status_code == 200
    await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": "Off", "Email": "off@x.com"}})
    await admin(salesforce, "POST", "/clock/advance", json={"seconds": 2})
    assert (await sync.put(f"{BASE}/objects/contacts", json={"salesforceObject": "Contact", "enabled": True})
            ).status_code == 200
    await run(sync)  # takes the org's "now" as the object's new start
    await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": "On", "Email": "on@x.com"}})
    await run(sync)
    found = (await records.post("/crm/v3/objects/contacts/search", json={"properties": ["email"]})).json()
    assert sorted(r["properties"]["email"] for r in found["results"]) == ["b@x.com", "on@x.com"]


async def test_a_late_commit_is_found_and_idle_polls_do_not_reread(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await admin(salesforce, "POST", "/clock/advance", json={"seconds": 30})
    for i in range(3):
        await admin(salesforce, "POST", "/records/Contact", json={"fields": {"LastName": f"N{i}",
                                                                            "Email": f"n{i}@x.com"}})
    assert (await run(sync))["inbound"]["contacts"]["created"] == 3
    # Nothing new: the window before the watermark holds only handled rows, so it is not read again.
    idle = await run(sync)
    assert idle["apiCalls"] == 1 and "overlapReread" not in idle["inbound"].get("contacts", {})
    # A transaction that committed late: stamped before the watermark, visible only now.
    [newest] = await sf_query(salesforce, "SELECT SystemModstamp FROM Contact ORDER BY SystemModstamp DESC LIMIT 1")
    late = newest["SystemModstamp"].replace("+0000", "Z")
    from datetime import datetime, timedelta

    stamp = (datetime.fromisoformat(late.replace("Z", "+00:00")) - timedelta(seconds=5)).isoformat()
    await admin(salesforce, "POST", "/seed", json={"type": "Contact", "records": [
        {"LastName": "Late", "Email": "late@x.com", "SystemModstamp": stamp, "LastModifiedDate": stamp,
         "CreatedDate": stamp}]})
    summary = await run(sync)
    assert summary["inbound"]["contacts"]["overlapReread"] == 1 and summary["inbound"]["contacts"]["created"] == 1
    found = (await records.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "EQ", "value": "late@x.com"}]}]})).json()
    assert found["total"] == 1
    assert (await run(sync))["apiCalls"] == 1

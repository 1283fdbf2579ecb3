"""The four rules through the running engine, both ways, clears included; conflicts; alternating edits."""

from __future__ import annotations

import httpx

from .helpers import admin, connect_and_start, eventually, queued, run, sf_query

BASE = "/corral/v1/salesforce"
FIELDS = "Id, FirstName, LastName, Title, Phone, MobilePhone, LastModifiedById, LastModifiedDate"


async def set_rule(sync: httpx.AsyncClient, prop: str, rule: str, field: str | None = None) -> None:
    mappings = (await sync.get(f"{BASE}/objects/contacts/mappings")).json()["results"]
    existing = next((m for m in mappings if m["property"] == prop), None)
    if existing is None:
        response = await sync.post(f"{BASE}/objects/contacts/mappings",
                                   json={"property": prop, "salesforceField": field, "syncRule": rule})
    else:
        response = await sync.patch(f"{BASE}/objects/contacts/mappings/{existing['id']}", json={"syncRule": rule})
    assert response.status_code in (200, 201), response.text


async def edit_corral(sync: httpx.AsyncClient, records: httpx.AsyncClient, record_id: str, **properties: str) -> None:
    response = await records.patch(f"/crm/v3/objects/contacts/{record_id}", json={"properties": properties})
    assert response.status_code == 200, response.text
    await eventually(lambda: queued(sync))


async def corral(records: httpx.AsyncClient, record_id: str) -> dict[str, str | None]:
    response = await records.get(f"/crm/v3/objects/contacts/{record_id}",
                                 params={"properties": "firstname,lastname,jobtitle,phone,mobilephone"})
    values = response.json()["properties"]
    return {k: values.get(k) for k in ("firstname", "lastname", "jobtitle", "phone", "mobilephone")}


async def salesforce_row(salesforce: httpx.AsyncClient) -> dict:
    [row] = await sf_query(salesforce, f"SELECT {FIELDS} FROM Contact")
    return row


async def test_every_rule_both_ways_with_clears_and_conflicts(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    # firstname: prefer Salesforce unless blank (standard); jobtitle: always Salesforce; phone: two-way;
    # mobilephone: don't sync.
    await set_rule(sync, "jobtitle", "ALWAYS_SALESFORCE")
    await set_rule(sync, "phone", "TWO_WAY")
    await set_rule(sync, "mobilephone", "DONT_SYNC")
    created = await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "rules@example.com", "firstname": "Ann", "lastname": "Lee", "jobtitle": "Eng", "phone": "111",
        "mobilephone": "999"}})
    record_id = created.json()["id"]
    await eventually(lambda: queued(sync))
    await run(sync)
    row = await salesforce_row(salesforce)
    assert (row["FirstName"], row["Title"], row["Phone"], row["MobilePhone"]) == ("Ann", None, "111", None)

    # Corral changes: two-way passes; prefer-Salesforce loses to Salesforce's value; always-Salesforce and
    # don't-sync never reach Salesforce.
    await edit_corral(sync, records, record_id, firstname="Anne", phone="222", jobtitle="Mgr", mobilephone="888")
    await run(sync)
    row = await salesforce_row(salesforce)
    assert (row["FirstName"], row["Title"], row["Phone"], row["MobilePhone"]) == ("Ann", None, "222", None)
    assert await corral(records, record_id) == {"firstname": "Ann", "lastname": "Lee", "jobtitle": "Mgr",
                                                "phone": "222", "mobilephone": "888"}

    # Salesforce changes: every rule but don't-sync brings them in.
    await admin(salesforce, "PATCH", f"/records/Contact/{row['Id']}", json={"fields": {
        "Title": "CTO", "FirstName": "Annie", "Phone": "333", "MobilePhone": "777"}})
    await run(sync)
    assert await corral(records, record_id) == {"firstname": "Annie", "lastname": "Lee", "jobtitle": "CTO",
                                                "phone": "333", "mobilephone": "888"}

    # Salesforce clears: every rule but don't-sync clears Corral.
    await admin(salesforce, "PATCH", f"/records/Contact/{row['Id']}", json={"fields": {
        "Title": None, "FirstName": None, "Phone": None, "MobilePhone": None}})
    await run(sync)
    assert await corral(records, record_id) == {"firstname": None, "lastname": "Lee", "jobtitle": None,
                                                "phone": None, "mobilephone": "888"}

    # Corral values into blank Salesforce fields: prefer-Salesforce and two-way write, always-Salesforce never.
    await edit_corral(sync, records, record_id, firstname="Zed", phone="444", jobtitle="Boss")
    await run(sync)
    row = await salesforce_row(salesforce)
    assert (row["FirstName"], row["Title"], row["Phone"]) == ("Zed", None, "444")

    # Corral clears: two-way clears Salesforce; prefer-Salesforce gets Salesforce's value back.
    await edit_corral(sync, records, record_id, firstname="", phone="")
    await run(sync)
    row = await salesforce_row(salesforce)
    assert (row["FirstName"], row["Phone"]) == ("Zed", None)
    assert (await corral(records, record_id))["firstname"] == "Zed"

    # Two-way conflicts: both sides changed since the last sync; the later change wins, either way.
    await admin(salesforce, "PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Phone": "555"}})
    await edit_corral(sync, records, record_id, phone="666")
    summary = await run(sync)
    assert (await salesforce_row(salesforce))["Phone"] == "666"
    assert (await corral(records, record_id))["phone"] == "666"
    assert summary["outbound"]["contacts"]["conflicts"] == 1
    await edit_corral(sync, records, record_id, phone="777")
    await admin(salesforce, "POST", "/clock/advance", json={"seconds": 5})
    await admin(salesforce, "PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Phone": "888"}})
    await run(sync)
    assert (await salesforce_row(salesforce))["Phone"] == "888"
    assert (await corral(records, record_id))["phone"] == "888"


async def test_twenty_alternating_edits_end_equal_without_extra_writes(sync, records, salesforce):
    await connect_and_start(sync, ("contacts", "Contact"))
    await set_rule(sync, "jobtitle", "TWO_WAY")
    created = await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "alt@example.com", "lastname": "Alt", "jobtitle": "v0"}})
    record_id = created.json()["id"]
    await eventually(lambda: queued(sync))
    await run(sync)
    state = await admin(salesforce, "GET", "/state")
    integration, person = state["integrationUserId"], state["adminUserId"]
    row = await salesforce_row(salesforce)
    for i in range(1, 21):
        if i % 2:
            await edit_corral(sync, records, record_id, jobtitle=f"corral {i}")
            await run(sync)
            row = await salesforce_row(salesforce)
            assert row["Title"] == f"corral {i}" and row["LastModifiedById"] == integration
        else:
            before = row["LastModifiedDate"]
            await admin(salesforce, "PATCH", f"/records/Contact/{row['Id']}", json={"fields": {"Title": f"sf {i}"}})
            await run(sync)
            row = await salesforce_row(salesforce)
            # Salesforce's change came in; nothing was written back to Salesforce.
            assert row["LastModifiedById"] == person and row["LastModifiedDate"] > before
            assert (await corral(records, record_id))["jobtitle"] == f"sf {i}"
    for _ in range(3):
        await run(sync)
    assert (await salesforce_row(salesforce)) == row
    assert (await corral(records, record_id))["jobtitle"] == row["Title"] == "sf 20"
    history = (await records.get(f"/crm/v3/objects/contacts/{record_id}",
                                 params={"propertiesWithHistory": "jobtitle"})).json()["propertiesWithHistory"]["jobtitle"]
    # One version per edit (ten made in Corral, ten brought from Salesforce) and the first value: no echo wrote.
    assert len(history) == 21
    assert [h["sourceType"] for h in history[:20]] == ["SALESFORCE", "API"] * 10

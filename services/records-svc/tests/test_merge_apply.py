"""records-svc applies a merge plan atomically and can restore both originals."""

from __future__ import annotations

import httpx


async def make(api: httpx.AsyncClient, object_type: str, **props: str) -> str:
    response = await api.post(f"/crm/v3/objects/{object_type}", json={"properties": props})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def associate(api: httpx.AsyncClient, contact: str, company: str, type_id: int = 279) -> None:
    r = await api.put(f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}",
                      json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}])
    assert r.status_code == 201, r.text


async def test_apply_creates_a_new_record_moves_everything_and_aliases_old_ids(api: httpx.AsyncClient) -> None:
    primary = await make(api, "contacts", email="p@example.com", firstname="Pat")
    secondary = await make(api, "contacts", email="s@example.com", firstname="Sam", city="Lyon")
    acme, globex, shared = [await make(api, "companies", name=n) for n in ("Acme", "Globex", "Shared")]
    await associate(api, primary, acme, 1)  # the primary's primary company
    await associate(api, secondary, globex, 1)  # the secondary's primary company
    await associate(api, primary, shared)
    await associate(api, secondary, shared)
    snapshot = (await api.get(f"/internal/v1/records/contacts/{secondary}/snapshot")).json()
    assert snapshot["properties"]["city"] == "Lyon" and snapshot["mergedInto"] is None

    applied = await api.post("/internal/v1/merges/apply", json={
        "mergeId": "m1", "objectType": "contacts", "primaryId": primary, "secondaryId": secondary,
        "properties": {"email": "p@example.com", "hs_additional_emails": "s@example.com", "firstname": "Pat",
                       "city": "Lyon"}})
    assert applied.status_code == 200, applied.text
    new_id = applied.json()["id"]
    assert new_id not in (primary, secondary)
    record = applied.json()["record"]["properties"]
    assert sorted(record["hs_merged_object_ids"].split(";")) == sorted([primary, secondary])

    for old in (primary, secondary):
        followed = await api.get(f"/crm/v3/objects/contacts/{old}", params={"properties": "city"})
        assert followed.json()["id"] == new_id
    # The secondary's email became an additional email of the result, which identifies it too.
    by_old_email = await api.get("/crm/v3/objects/contacts/s@example.com", params={"idProperty": "email"})
    assert by_old_email.json()["id"] == new_id
    by_additional = await api.post("/internal/v1/records/contacts/resolve",
                                   json={"property": "email", "values": ["s@example.com"]})
    assert by_additional.json()["matches"] == {"s@example.com": [new_id]}
    listing = (await api.get(f"/crm/v4/objects/contacts/{new_id}/associations/companies")).json()["results"]
    labels = {e["toObjectId"]: {t["label"] for t in e["associationTypes"]} for e in listing}
    assert labels == {acme: {None, "Primary"}, globex: {None}, shared: {None}}
    contacts_of_shared = (await api.get(f"/crm/v4/objects/companies/{shared}/associations/contacts")).json()
    assert [e["toObjectId"] for e in contacts_of_shared["results"]] == [new_id]

    again = await api.post("/internal/v1/merges/apply", json={
        "mergeId": "m2", "objectType": "contacts", "primaryId": primary, "secondaryId": new_id, "properties": {}})
    assert again.status_code == 409 and "already merged" in again.json()["message"]
    itself = await api.post("/internal/v1/merges/apply", json={
        "mergeId": "m3", "objectType": "contacts", "primaryId": new_id, "secondaryId": new_id, "properties": {}})
    assert itself.status_code == 400


async def test_unapply_restores_originals_and_keeps_later_edits(api: httpx.AsyncClient) -> None:
    primary = await make(api, "contacts", email="up@example.com", firstname="Una", jobtitle="CTO")
    secondary = await make(api, "contacts", email="us@example.com", firstname="Ulla", city="Bonn")
    company = await make(api, "companies", name="Unco")
    await associate(api, secondary, company)
    snaps = [(await api.get(f"/internal/v1/records/contacts/{i}/snapshot")).json() for i in (primary, secondary)]
    applied = (await api.post("/internal/v1/merges/apply", json={
        "mergeId": "mu", "objectType": "contacts", "primaryId": primary, "secondaryId": secondary,
        "properties": {"email": "up@example.com", "hs_additional_emails": "us@example.com", "firstname": "Una",
                       "jobtitle": "CTO", "city": "Bonn"}})).json()
    merged = applied["id"]
    await api.patch(f"/crm/v3/objects/contacts/{merged}", json={"properties": {"jobtitle": "CEO", "city": "Berlin"}})
    later_company = await make(api, "companies", name="Later")
    await associate(api, merged, later_company)

    undone = await api.post("/internal/v1/merges/unapply", json={
        "mergeId": "mu", "objectType": "contacts", "mergedId": merged, "primary": snaps[0], "secondary": snaps[1]})
    assert undone.status_code == 200, undone.text
    report = undone.json()
    assert report["keptChanges"] == {primary: {"jobtitle": "CEO"}, secondary: {"city": "Berlin"}}

    p = (await api.get(f"/crm/v3/objects/contacts/{primary}", params={"properties": "email,jobtitle,city"})).json()
    s = (await api.get(f"/crm/v3/objects/contacts/{secondary}", params={"properties": "email,city"})).json()
    assert (p["id"], p["properties"]["jobtitle"], p["properties"]["city"]) == (primary, "CEO", None)
    assert (s["id"], s["properties"]["email"], s["properties"]["city"]) == (secondary, "us@example.com", "Berlin")
    assert (await api.get("/crm/v3/objects/contacts/us@example.com", params={"idProperty": "email"})).json()["id"] \
        == secondary
    secondary_links = (await api.get(f"/crm/v4/objects/contacts/{secondary}/associations/companies")).json()
    assert [e["toObjectId"] for e in secondary_links["results"]] == [company]
    primary_links = (await api.get(f"/crm/v4/objects/contacts/{primary}/associations/companies")).json()
    assert [e["toObjectId"] for e in primary_links["results"]] == [later_company]
    assert (await api.get(f"/crm/v3/objects/contacts/{merged}")).json()["id"] == primary

"""Merging a whole cluster in one call (beyond HubSpot), and undoing it."""

from __future__ import annotations

import httpx
from crm_common.testing import signed_headers

from .helpers import make, next_event, read, subscribed


async def _four(records: httpx.AsyncClient) -> list[str]:
    stages = ["lead", "customer", "subscriber", "opportunity"]
    return [await make(records, "contacts", email=f"cl{i}@example.com", firstname="Ada" if i else "",
                       lastname="Lovelace", num_conversion_events=str(i + 1), lifecyclestage=stages[i],
                       city="" if i == 0 else f"City{i}")
            for i in range(4)]


async def test_a_four_record_cluster_merges_in_one_call_and_unmerges(merges: httpx.AsyncClient,
                                                                    records: httpx.AsyncClient) -> None:
    a, b, c, d = await _four(records)
    company = await make(records, "companies", name="Analytical Engines")
    linked = await records.put(f"/crm/v4/objects/contacts/{c}/associations/default/companies/{company}")
    assert linked.status_code in (200, 201), linked.text

    async with subscribed("record.merged") as queue:
        response = await merges.post("/corral/v1/merges/cluster", json={
            "objectType": "contacts", "primaryObjectId": a, "objectIdsToMerge": [b, c, d],
            "propertiesToKeep": {"lastname": d}})
        assert response.status_code == 200, response.text
        result = response.json()
        event = await next_event(queue, {"id": result["id"]})
    new_id = result["id"]
    assert new_id not in (a, b, c, d)
    assert sorted(event["data"]["mergedIds"]) == sorted([a, b, c, d])
    assert event["data"]["secondaryIds"] == [b, c, d]
    assert result["mergesInvolved"] == 3

    merged = await read(records, "contacts", new_id, "email", "hs_additional_emails", "num_conversion_events",
                        "lifecyclestage", "firstname", "city", "hs_merged_object_ids")
    props = merged["properties"]
    assert props["email"] == "cl0@example.com"
    assert sorted(props["hs_additional_emails"].split(";")) == ["cl1@example.com", "cl2@example.com",
                                                                "cl3@example.com"]
    assert props["num_conversion_events"] == "10"
    assert props["lifecyclestage"] == "customer"
    assert props["firstname"] == "Ada" and props["city"] == "City1"  # empty primary values from the first that has one
    assert sorted(props["hs_merged_object_ids"].split(";")) == sorted([a, b, c, d])
    for old in (a, b, c, d):
        assert (await records.get(f"/crm/v3/objects/contacts/{old}")).json()["id"] == new_id
    links = await records.get(f"/crm/v4/objects/contacts/{new_id}/associations/companies")
    assert [str(r["toObjectId"]) for r in links.json()["results"]] == [company]

    # the limit counts every absorbed record: merging the result with one more record is the fourth merge
    e = await make(records, "contacts", email="cl4@example.com")
    later = await merges.post("/crm/v3/objects/contacts/merge", json={"primaryObjectId": new_id, "objectIdToMerge": e})
    assert later.status_code == 200, later.text
    history = (await merges.get("/corral/v1/merges", params={"recordId": later.json()["id"]})).json()["results"]
    assert history[0]["mergesInvolved"] == 4
    assert (await merges.post(f"/corral/v1/merges/{history[0]['id']}/unmerge")).status_code == 200

    undone = await merges.post(f"/corral/v1/merges/{result['mergeId']}/unmerge")
    assert undone.status_code == 200, undone.text
    assert undone.json()["secondaryIds"] == [b, c, d]
    for i, old in enumerate((a, b, c, d)):
        restored = await read(records, "contacts", old, "email", "num_conversion_events")
        assert restored["id"] == old
        assert restored["properties"]["email"] == f"cl{i}@example.com"
        assert restored["properties"]["num_conversion_events"] == str(i + 1)
    links = await records.get(f"/crm/v4/objects/contacts/{c}/associations/companies")
    assert [str(r["toObjectId"]) for r in links.json()["results"]] == [company]


async def test_a_cluster_mixing_types_or_accounts_is_refused_and_nothing_changes(
        merges: httpx.AsyncClient, records: httpx.AsyncClient, records_app: object, account_id: int) -> None:
    a, b = [await make(records, "contacts", email=f"mx{i}@example.com") for i in range(2)]
    company = await make(records, "companies", name="Not a person")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=records_app), base_url="http://records",
                                 headers=signed_headers(account_id + 10**12)) as other_account:
        foreign = await make(other_account, "contacts", email="foreign@example.com")

    mixed = await merges.post("/corral/v1/merges/cluster", json={
        "objectType": "contacts", "primaryObjectId": a, "objectIdsToMerge": [b, company]})
    assert mixed.status_code == 404
    assert company in mixed.json()["message"] and "same object type" in mixed.json()["message"]
    stranger = await merges.post("/corral/v1/merges/cluster", json={
        "objectType": "contacts", "primaryObjectId": a, "objectIdsToMerge": [b, foreign]})
    assert stranger.status_code == 404
    twice = await merges.post("/corral/v1/merges/cluster", json={
        "objectType": "contacts", "primaryObjectId": a, "objectIdsToMerge": [b, a]})
    assert twice.status_code == 400
    wrong_keep = await merges.post("/corral/v1/merges/cluster", json={
        "objectType": "contacts", "primaryObjectId": a, "objectIdsToMerge": [b], "propertiesToKeep": {"email": "42"}})
    assert wrong_keep.status_code == 400
    for record_id in (a, b, company):
        assert (await records.get(f"/crm/v3/objects/{'companies' if record_id == company else 'contacts'}/"
                                  f"{record_id}")).json()["id"] == record_id
    assert (await merges.get("/corral/v1/merges", params={"recordId": a})).json()["results"] == []

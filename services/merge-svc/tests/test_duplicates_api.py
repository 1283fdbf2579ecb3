"""Duplicate suggestions through merge-svc's API, against the real records-svc and Postgres."""

from __future__ import annotations

from typing import Any

import httpx
from crm_common.cloudevents import CloudEvent
from crm_common.db import transaction

from merge_svc.duplicates import events

from .helpers import scanned, seed, suggestions, synthetic_contacts


def _pairs(clusters: list[dict[str, Any]]) -> set[frozenset[str]]:
    return {frozenset(p["recordIds"]) for c in clusters for p in c["pairs"]}


async def _deliver(merge_app: Any, *message: CloudEvent) -> None:
    """What the consumer does with a message's events from the broker (the broker path itself is covered end
    to end)."""
    runtime = merge_app.runtime
    handle = events.handler(lambda: runtime.resources.records)
    async with transaction(runtime.sessionmaker) as session:
        await handle(session, list(message))


async def test_scan_suggests_planted_duplicates_with_what_matched_and_a_dismissal_sticks(
        merges: httpx.AsyncClient, records: httpx.AsyncClient, merge_app: Any, account_id: int) -> None:
    people, truth = synthetic_contacts(160, 12)
    ids = await seed(records, "contacts", people)
    settings = (await merges.get("/corral/v1/duplicates/settings/contacts")).json()
    assert settings["isDefault"] and settings["threshold"] == 0.9
    assert {"name": "hs_additional_emails", "kind": "email"} in settings["properties"]

    job = await scanned(merges, "contacts")
    assert job["progress"]["recordsRead"] == len(people) and job["progress"]["recordsTotal"] == len(people)
    clusters = await suggestions(merges, "contacts")
    planted = {frozenset((ids[a], ids[b])) for a, b in truth}
    found = _pairs(clusters)
    assert len(found & planted) >= len(planted) - 2
    assert len(found - planted) <= 2
    sample = next(c for c in clusters if frozenset(c["recordIds"]) in planted)
    assert sample["score"] >= 0.9 and sample["pairs"][0]["matchedOn"]
    assert set(sample["pairs"][0]["matchedOn"]) <= {"firstname", "lastname", "email", "phone", "city", "zip"}

    dismissed = (await merges.post(f"/corral/v1/duplicates/{sample['id']}/dismiss")).json()
    assert dismissed["dismissed"] is True
    assert sample["id"] not in {c["id"] for c in await suggestions(merges, "contacts")}
    # a new scan leaves it dismissed
    await scanned(merges, "contacts")
    assert frozenset(sample["recordIds"]) not in {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")}
    # until its records change a compared value (both move to the same city: still alike, but not as dismissed)
    for changed in sample["recordIds"]:
        response = await records.patch(f"/crm/v3/objects/contacts/{changed}", json={"properties": {"city": "Lisbon"}})
        assert response.status_code == 200
        await _deliver(merge_app, CloudEvent(source="records-svc", type="record.updated", corralaccount=account_id,
                                             data={"objectTypeId": "0-1", "objectType": "contacts", "id": changed,
                                                   "changes": {"city": "Lisbon"}}))
    again = {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")}
    assert frozenset(sample["recordIds"]) in again


async def test_new_and_archived_records_join_and_leave_clusters_without_a_rescan(
        merges: httpx.AsyncClient, records: httpx.AsyncClient, merge_app: Any, account_id: int) -> None:
    people, _ = synthetic_contacts(120, 6, seed=11)
    ids = await seed(records, "contacts", people)
    await scanned(merges, "contacts")
    before = {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")}
    original = people[5]
    twin = {**original, "email": original["email"].replace("@", "+crm@"), "phone": ""}
    response = await records.post("/crm/v3/objects/contacts", json={"properties": twin})
    new_id = response.json()["id"]
    created = {"objectTypeId": "0-1", "objectType": "contacts", "id": new_id, "properties": twin}
    # an event from well before the scan began changes nothing: the scan read that record already
    await _deliver(merge_app, CloudEvent(source="records-svc", type="record.created", corralaccount=account_id,
                                         time="2026-01-01T00:00:00.000Z", data=created))
    assert all(new_id not in c["recordIds"] for c in await suggestions(merges, "contacts"))
    await _deliver(merge_app, CloudEvent(source="records-svc", type="record.created", corralaccount=account_id,
                                         data=created))
    after = await suggestions(merges, "contacts")
    joined = next(c for c in after if new_id in c["recordIds"])
    assert ids[5] in joined["recordIds"]
    pair = next(p for p in joined["pairs"] if new_id in p["recordIds"])
    assert pair["matchedOn"]["email"] == "exact"

    checked = await merges.post("/corral/v1/duplicates/check", json={"objectType": "contacts", "properties": {
        "firstname": original["firstname"], "lastname": original["lastname"], "phone": original["phone"]}})
    assert checked.status_code == 200, checked.text
    assert ids[5] in [m["id"] for m in checked.json()["results"]]

    assert (await records.delete(f"/crm/v3/objects/contacts/{new_id}")).status_code == 204
    await _deliver(merge_app, CloudEvent(source="records-svc", type="record.archived", corralaccount=account_id,
                                         data={"objectTypeId": "0-1", "objectType": "contacts", "id": new_id}))
    assert all(new_id not in c["recordIds"] for c in await suggestions(merges, "contacts"))
    assert {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")} == before


async def test_a_message_of_many_events_is_filed_as_one_change(
        merges: httpx.AsyncClient, records: httpx.AsyncClient, merge_app: Any, account_id: int) -> None:
    """A bulk write's message: events the scan already read leave the suggestions as they are, and a record
    created then archived within the message never joins a cluster."""
    people, _ = synthetic_contacts(120, 6, seed=23)
    ids = await seed(records, "contacts", people)
    await scanned(merges, "contacts")
    before = {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")}
    assert before

    def event(kind: str, record_id: str, properties: dict[str, Any] | None = None) -> CloudEvent:
        data = {"objectTypeId": "0-1", "objectType": "contacts", "id": record_id}
        return CloudEvent(source="records-svc", type=kind, corralaccount=account_id,
                          data={**data, "properties": properties} if properties is not None else data)

    # the import's own events arrive after the scan (inside its margin): every value is already filed
    await _deliver(merge_app, *(event("record.created", rid, person) for rid, person in zip(ids, people, strict=True)))
    assert {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")} == before

    twin = {**people[7], "email": people[7]["email"].replace("@", "+twin@")}
    twin_id = (await records.post("/crm/v3/objects/contacts", json={"properties": twin})).json()["id"]
    assert (await records.delete(f"/crm/v3/objects/contacts/{twin_id}")).status_code == 204
    await _deliver(merge_app, event("record.created", twin_id, twin), event("record.archived", twin_id))
    assert {frozenset(c["recordIds"]) for c in await suggestions(merges, "contacts")} == before

    again = {**people[9], "email": people[9]["email"].replace("@", "+again@")}
    again_id = (await records.post("/crm/v3/objects/contacts", json={"properties": again})).json()["id"]
    await _deliver(merge_app, event("record.created", twin_id, twin), event("record.archived", twin_id),
                   event("record.created", again_id, again))
    joined = next(c for c in await suggestions(merges, "contacts") if again_id in c["recordIds"])
    assert ids[9] in joined["recordIds"] and twin_id not in joined["recordIds"]


async def test_bad_settings_and_scans_are_refused_and_change_nothing(merges: httpx.AsyncClient,
                                                                      records: httpx.AsyncClient) -> None:
    unknown_property = await merges.put("/corral/v1/duplicates/settings/contacts", json={
        "properties": [{"name": "firstname", "kind": "name"}, {"name": "shoe_size", "kind": "text"}]})
    assert unknown_property.status_code == 400
    assert "shoe_size" in unknown_property.json()["message"]
    unknown_kind = await merges.put("/corral/v1/duplicates/settings/contacts", json={
        "properties": [{"name": "firstname", "kind": "nickname"}]})
    assert unknown_kind.status_code == 400
    assert "nickname" in unknown_kind.json()["message"] and "firstname" in unknown_kind.json()["message"]
    bad_threshold = await merges.put("/corral/v1/duplicates/settings/contacts", json={
        "properties": [{"name": "firstname", "kind": "name"}], "threshold": 1.5})
    assert bad_threshold.status_code == 400
    assert (await merges.get("/corral/v1/duplicates/settings/contacts")).json()["isDefault"] is True

    empty = await merges.post("/corral/v1/duplicates/jobs", json={"objectType": "tickets"})
    assert empty.status_code == 400
    assert "no tickets records" in empty.json()["message"]
    unknown_type = await merges.post("/corral/v1/duplicates/jobs", json={"objectType": "spaceships"})
    assert unknown_type.status_code == 404
    no_model = await merges.post("/corral/v1/duplicates/check", json={"objectType": "companies",
                                                                       "properties": {"name": "Acme"}})
    assert no_model.status_code == 409
    missing = await merges.post("/corral/v1/duplicates/999999999/dismiss")
    assert missing.status_code == 404

    custom = await merges.put("/corral/v1/duplicates/settings/companies", json={
        "properties": [{"name": "name", "kind": "text"}, {"name": "domain", "kind": "domain"}], "threshold": 0.8})
    assert custom.status_code == 200, custom.text
    stored = (await merges.get("/corral/v1/duplicates/settings/companies")).json()
    assert stored["isDefault"] is False and stored["threshold"] == 0.8 and len(stored["properties"]) == 2

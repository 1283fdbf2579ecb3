"""The 250-merge limit, serialised concurrent merges, and unmerge after the merged record was edited."""

from __future__ import annotations

import asyncio

import httpx

from .helpers import make, merge, next_event, read, subscribed


async def bulk_contacts(records: httpx.AsyncClient, prefix: str, count: int) -> list[str]:
    response = await records.post("/internal/v1/records/contacts/bulk-upsert", json={
        "operation": "CREATE", "sourceType": "API",
        "rows": [{"ref": i, "properties": {"email": f"{prefix}{i}@example.com", "firstname": f"N{i}"}}
                 for i in range(count)]})
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


async def test_a_chain_of_merges_is_refused_at_the_251st(merges: httpx.AsyncClient,
                                                         records: httpx.AsyncClient) -> None:
    fresh = await bulk_contacts(records, "chain", 252)
    current = fresh[0]
    for k in range(1, 251):
        # Alternate sides: the limit counts the merges of both records, whichever is primary.
        pair = (current, fresh[k]) if k % 2 else (fresh[k], current)
        response = await merge(merges, "contacts", *pair)
        assert response.status_code == 200, f"merge {k}: {response.text}"
        current = response.json()["id"]
    merged_ids = (await read(records, "contacts", current, "hs_merged_object_ids"))["properties"][
        "hs_merged_object_ids"]
    assert len(merged_ids.split(";")) == 500

    refused = await merge(merges, "contacts", current, fresh[251])
    assert refused.status_code == 414, refused.text
    body = refused.json()
    assert body["message"] == "Cannot have more than 250 identities on a profile"
    assert body["status"] == "error" and body["correlationId"]
    # Nothing changed: the fresh record is still itself and the chain's result still answers.
    assert (await read(records, "contacts", fresh[251], "email"))["id"] == fresh[251]
    assert (await read(records, "contacts", current, "email"))["id"] == current


async def test_concurrent_merges_of_the_same_record_are_serialised(merges: httpx.AsyncClient,
                                                                   records: httpx.AsyncClient) -> None:
    shared, left, right = await bulk_contacts(records, "race", 3)
    first, second = await asyncio.gather(merge(merges, "contacts", shared, left),
                                         merge(merges, "contacts", shared, right))
    outcomes = sorted([first.status_code, second.status_code])
    assert outcomes == [200, 409], (first.text, second.text)
    winner = first if first.status_code == 200 else second
    loser_secondary = right if winner is first else left
    loser = second if winner is first else first
    assert f"already merged into {winner.json()['id']}" in loser.json()["message"]
    # The refused merge lost nothing: its secondary is untouched; the winner holds both records' emails.
    untouched = await read(records, "contacts", loser_secondary, "email")
    assert untouched["id"] == loser_secondary
    result = (await read(records, "contacts", winner.json()["id"], "email", "hs_additional_emails"))["properties"]
    assert result["email"] == "race0@example.com" and result["hs_additional_emails"]
    # Retrying the refused one against the result works.
    again = await merge(merges, "contacts", winner.json()["id"], loser_secondary)
    assert again.status_code == 200, again.text
    emails = (await read(records, "contacts", again.json()["id"], "hs_additional_emails"))["properties"]
    assert sorted(emails["hs_additional_emails"].split(";")) == ["race1@example.com", "race2@example.com"]


async def test_unmerge_after_an_edit_restores_both_originals_and_keeps_the_edit(
        merges: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    primary = await make(records, "contacts", email="un-p@example.com", firstname="Una", jobtitle="CTO",
                         num_conversion_events="2")
    secondary = await make(records, "contacts", email="un-s@example.com", firstname="Ulla", city="Bonn",
                           num_conversion_events="3")
    company = await make(records, "companies", name="Unco")
    linked = await records.put(f"/crm/v4/objects/contacts/{secondary}/associations/companies/{company}",
                               json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}])
    assert linked.status_code == 201, linked.text

    async with subscribed("record.merged") as queue:
        merged_response = await merge(merges, "contacts", primary, secondary)
        assert merged_response.status_code == 200, merged_response.text
        merged_id = merged_response.json()["id"]
        merge_id = (await next_event(queue, {"id": merged_id}))["data"]["mergeId"]
    edited = await records.patch(f"/crm/v3/objects/contacts/{merged_id}",
                                 json={"properties": {"jobtitle": "CEO", "num_conversion_events": "9"}})
    assert edited.status_code == 200, edited.text

    async with subscribed("record.unmerged") as queue:
        response = await merges.post(f"/corral/v1/merges/{merge_id}/unmerge")
        assert response.status_code == 200, response.text
        event = await next_event(queue, {"mergeId": merge_id})
    report = response.json()
    kept = {primary: {"jobtitle": "CEO", "num_conversion_events": "9"}}
    assert report["keptChanges"] == kept
    assert (report["primaryId"], report["secondaryId"], report["mergedId"]) == (primary, secondary, merged_id)
    # The merge summed the counter (2 + 3 = 5); a later edit of a combined value is reported.
    assert [(c["property"], c["mergedValue"], c["laterValue"]) for c in report["conflicts"]] == \
        [("num_conversion_events", "5", "9")]
    assert event["data"]["keptChanges"] == kept and event["data"]["conflicts"] == report["conflicts"]

    p = (await read(records, "contacts", primary, "email", "firstname", "jobtitle", "num_conversion_events",
                    "hs_additional_emails"))
    s = (await read(records, "contacts", secondary, "email", "firstname", "city", "num_conversion_events"))
    assert p["id"] == primary and s["id"] == secondary
    assert (p["properties"]["email"], p["properties"]["firstname"], p["properties"]["jobtitle"],
            p["properties"]["num_conversion_events"], p["properties"]["hs_additional_emails"]) == \
        ("un-p@example.com", "Una", "CEO", "9", None)
    assert (s["properties"]["email"], s["properties"]["firstname"], s["properties"]["city"],
            s["properties"]["num_conversion_events"]) == ("un-s@example.com", "Ulla", "Bonn", "3")
    links = (await records.get(f"/crm/v4/objects/contacts/{secondary}/associations/companies")).json()
    assert [e["toObjectId"] for e in links["results"]] == [company]

    view = (await merges.get(f"/corral/v1/merges/{merge_id}")).json()
    assert view["status"] == "UNMERGED" and view["unmerge"]["keptChanges"] == kept
    twice = await merges.post(f"/corral/v1/merges/{merge_id}/unmerge")
    assert twice.status_code == 409 and "already unmerged" in twice.json()["message"]
    # The originals can be merged again.
    assert (await merge(merges, "contacts", primary, secondary)).status_code == 200


async def test_unmerge_waits_for_later_merges_of_the_result(merges: httpx.AsyncClient,
                                                           records: httpx.AsyncClient) -> None:
    a, b, c = await bulk_contacts(records, "later", 3)
    first = (await merge(merges, "contacts", a, b)).json()["id"]
    second = (await merge(merges, "contacts", first, c)).json()["id"]
    history = (await merges.get("/corral/v1/merges", params={"recordId": second})).json()["results"]
    assert [(m["primaryObjectId"], m["mergedObjectId"]) for m in history] == [(first, second), (a, first)]
    older, newer = history[1]["id"], history[0]["id"]
    refused = await merges.post(f"/corral/v1/merges/{older}/unmerge")
    assert refused.status_code == 409 and f"unmerge {newer} first" in refused.json()["message"]
    assert (await merges.post(f"/corral/v1/merges/{newer}/unmerge")).status_code == 200
    assert (await merges.post(f"/corral/v1/merges/{older}/unmerge")).status_code == 200
    for record_id in (a, b, c):
        assert (await read(records, "contacts", record_id, "email"))["id"] == record_id
    missing = await merges.post("/corral/v1/merges/99999999/unmerge")
    assert missing.status_code == 404

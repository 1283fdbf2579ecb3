"""Deals, tickets and custom objects merge with the default rules; account rule overrides; scopes."""

from __future__ import annotations

import httpx

from crm_common.testing import signed_headers

from .helpers import make, merge, read

BOATS = {
    "name": "boats", "labels": {"singular": "Boat", "plural": "Boats"},
    "primaryDisplayProperty": "model", "requiredProperties": ["model"], "searchableProperties": ["model"],
    "properties": [{"name": "model", "label": "Model", "type": "string", "fieldType": "text"},
                   {"name": "hull", "label": "Hull id", "type": "string", "fieldType": "text", "hasUniqueValue": True},
                   {"name": "length", "label": "Length", "type": "number", "fieldType": "number"}],
    "associatedObjects": ["CONTACT"],
}


async def test_deals_and_tickets_merge_with_the_default_rules(merges: httpx.AsyncClient,
                                                              records: httpx.AsyncClient) -> None:
    deal_p = await make(records, "deals", dealname="Big", pipeline="default", dealstage="qualifiedtobuy",
                        createdate="2024-02-01T00:00:00Z")
    deal_s = await make(records, "deals", dealname="Big (dup)", pipeline="default", dealstage="closedwon",
                        amount="500", createdate="2023-02-01T00:00:00Z")
    response = await merge(merges, "0-3", deal_p, deal_s)
    assert response.status_code == 200, response.text
    merged = (await read(records, "deals", response.json()["id"], "dealname", "dealstage", "amount",
                         "createdate"))["properties"]
    assert (merged["dealname"], merged["dealstage"], merged["amount"]) == ("Big", "qualifiedtobuy", "500")
    assert merged["createdate"].startswith("2023-02-01")
    history = (await merges.get("/corral/v1/merges", params={"objectType": "deal", "recordId": deal_p})).json()
    assert [(m["objectType"], m["objectTypeId"]) for m in history["results"]] == [("deals", "0-3")]

    ticket_p = await make(records, "tickets", subject="Broken", hs_pipeline="0", hs_pipeline_stage="1")
    ticket_s = await make(records, "tickets", subject="Broken!", hs_pipeline="0", hs_pipeline_stage="2",
                          content="details")
    response = await merge(merges, "tickets", ticket_p, ticket_s)
    assert response.status_code == 200, response.text
    merged = (await read(records, "tickets", response.json()["id"], "subject", "content"))["properties"]
    assert (merged["subject"], merged["content"]) == ("Broken", "details")


async def test_custom_objects_merge(merges: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    schema = await records.post("/crm-object-schemas/v3/schemas", json=BOATS)
    assert schema.status_code == 201, schema.text
    type_id = schema.json()["objectTypeId"]
    primary = await make(records, type_id, model="Laser", hull="H-1")
    secondary = await make(records, "boats", model="Laser II", hull="H-2", length="4.2")
    response = await merge(merges, "boats", primary, secondary)
    assert response.status_code == 200, response.text
    new_id = response.json()["id"]
    merged = (await read(records, type_id, new_id, "model", "hull", "length"))["properties"]
    assert (merged["model"], merged["hull"], merged["length"]) == ("Laser", "H-1", "4.2")
    assert (await read(records, "boats", secondary, "model"))["id"] == new_id
    history = (await merges.get("/corral/v1/merges", params={"objectType": type_id, "recordId": new_id})).json()
    assert [m["objectTypeId"] for m in history["results"]] == [type_id]


async def test_account_rule_overrides_apply_to_its_merges_only(merges: httpx.AsyncClient,
                                                               records: httpx.AsyncClient,
                                                               account_id: int) -> None:
    listed = (await merges.get("/corral/v1/merges/rules/contacts")).json()
    assert {"property": "num_conversion_events", "strategy": "SUM", "additional": None, "overridden": False} \
        in listed["results"]
    put = await merges.put("/corral/v1/merges/rules/contacts/num_conversion_events",
                           json={"strategy": "PRIMARY_UNLESS_EMPTY"})
    assert put.status_code == 200, put.text
    summed = await merges.put("/corral/v1/merges/rules/contacts/hs_analytics_num_page_views",
                              json={"strategy": "SUM"})
    assert summed.status_code == 200
    bad = await merges.put("/corral/v1/merges/rules/contacts/firstname", json={"strategy": "SECONDARY_TO_ADDITIONAL"})
    assert bad.status_code == 400
    unknown = await merges.put("/corral/v1/merges/rules/contacts/firstname", json={"strategy": "LOUDEST"})
    assert unknown.status_code == 400

    primary = await make(records, "contacts", email="rule-p@example.com", num_conversion_events="2")
    secondary = await make(records, "contacts", email="rule-s@example.com", num_conversion_events="5")
    response = await merge(merges, "contacts", primary, secondary)
    merged = (await read(records, "contacts", response.json()["id"], "num_conversion_events"))["properties"]
    assert merged["num_conversion_events"] == "2"

    # Another account still sums.
    other = signed_headers(account_id + 600_000)
    a = (await records.post("/crm/v3/objects/contacts", json={"properties": {"num_conversion_events": "2"}},
                            headers=other)).json()["id"]
    b = (await records.post("/crm/v3/objects/contacts", json={"properties": {"num_conversion_events": "5"}},
                            headers=other)).json()["id"]
    response = await merges.post("/crm/v3/objects/contacts/merge", json={"primaryObjectId": a, "objectIdToMerge": b},
                                 headers=other)
    assert response.status_code == 200, response.text
    merged = (await records.get(f"/crm/v3/objects/contacts/{response.json()['id']}",
                                params={"properties": "num_conversion_events"}, headers=other)).json()
    assert merged["properties"]["num_conversion_events"] == "7"

    assert (await merges.delete("/corral/v1/merges/rules/contacts/num_conversion_events")).status_code == 204
    listed = (await merges.get("/corral/v1/merges/rules/contacts")).json()["results"]
    assert next(r for r in listed if r["property"] == "num_conversion_events")["overridden"] is False


async def test_corral_routes_need_the_merges_scope(merges: httpx.AsyncClient, account_id: int) -> None:
    limited = signed_headers(account_id, scopes=["crm.objects.contacts.write"])
    response = await merges.get("/corral/v1/merges", params={"recordId": "1"}, headers=limited)
    assert response.status_code == 403 and response.json()["category"] == "MISSING_SCOPES"
    assert (await merges.post("/corral/v1/merges/1/unmerge", headers=limited)).status_code == 403
    unsigned = await merges.get("/corral/v1/merges", params={"recordId": "1"}, headers={"x-corral-auth": ""})
    assert unsigned.status_code == 401

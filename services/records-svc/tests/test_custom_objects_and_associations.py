"""Custom objects, associations v4 with labels, the primary company rule, GDPR delete."""

from __future__ import annotations

import httpx


async def make(api: httpx.AsyncClient, object_type: str, **props: str) -> str:
    response = await api.post(f"/crm/v3/objects/{object_type}", json={"properties": props})
    assert response.status_code == 201, response.text
    return response.json()["id"]


CARS = {
    "name": "cars", "labels": {"singular": "Car", "plural": "Cars"},
    "primaryDisplayProperty": "model", "requiredProperties": ["model"], "searchableProperties": ["model", "vin"],
    "properties": [{"name": "model", "label": "Model", "type": "string", "fieldType": "text"},
                   {"name": "vin", "label": "VIN", "type": "string", "fieldType": "text", "hasUniqueValue": True},
                   {"name": "year", "label": "Year", "type": "number", "fieldType": "number"}],
    "associatedObjects": ["CONTACT"],
}


async def test_custom_object_works_like_a_standard_one(api: httpx.AsyncClient) -> None:
    created = await api.post("/crm-object-schemas/v3/schemas", json=CARS)
    assert created.status_code == 201, created.text
    schema = created.json()
    type_id = schema["objectTypeId"]
    assert type_id.startswith("2-") and schema["fullyQualifiedName"].endswith("_cars")
    assert {p["name"] for p in schema["properties"]} == {"model", "vin", "year"}

    clash = await api.post("/crm-object-schemas/v3/schemas", json=CARS)
    assert clash.status_code == 409 and "cars" in clash.json()["message"]

    for key in (type_id, "cars", schema["fullyQualifiedName"]):
        car = await api.post(f"/crm/v3/objects/{key}", json={"properties": {"model": f"T-{key}", "year": "1990"}})
        assert car.status_code == 201, car.text
    missing = await api.post(f"/crm/v3/objects/{type_id}", json={"properties": {"year": "2000"}})
    assert missing.status_code == 400 and "model" in missing.text
    bad_type = await api.post(f"/crm/v3/objects/{type_id}", json={"properties": {"model": "X", "year": "old"}})
    assert bad_type.status_code == 400

    await api.post(f"/crm/v3/objects/{type_id}", json={"properties": {"model": "Beetle", "vin": "V1"}})
    dup_vin = await api.post(f"/crm/v3/objects/{type_id}", json={"properties": {"model": "Golf", "vin": "v1"}})
    assert dup_vin.status_code == 409

    found = await api.post("/crm/v3/objects/cars/search", json={"query": "beetle", "properties": ["model"]})
    assert [r["properties"]["model"] for r in found.json()["results"]] == ["Beetle"]

    in_use = await api.delete(f"/crm-object-schemas/v3/schemas/{type_id}")
    assert in_use.status_code == 409 and "record" in in_use.json()["message"]

    empty = await api.post("/crm-object-schemas/v3/schemas", json={**CARS, "name": "boats",
                                                                   "labels": {"singular": "Boat", "plural": "Boats"}})
    assert (await api.delete(f"/crm-object-schemas/v3/schemas/{empty.json()['objectTypeId']}")).status_code == 204
    assert (await api.get("/crm/v3/objects/boats")).status_code == 400


async def test_labeled_associations_and_search_by_associated_company(api: httpx.AsyncClient) -> None:
    contact = await make(api, "contacts", email="lab@example.com")
    company = await make(api, "companies", name="Initech")
    other = await make(api, "companies", name="Initrode")

    label = await api.post("/crm/v4/associations/contacts/companies/labels",
                           json={"label": "Billing contact", "name": "billing_contact", "inverseLabel": "Billed"})
    assert label.status_code == 200, label.text
    forward_id = next(r["typeId"] for r in label.json()["results"] if r["label"] == "Billing contact")

    put = await api.put(f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}",
                        json=[{"associationCategory": "USER_DEFINED", "associationTypeId": forward_id}])
    assert put.status_code == 201, put.text
    assert put.json()["labels"] == ["Billing contact"]

    listing = await api.get(f"/crm/v4/objects/contacts/{contact}/associations/companies")
    [entry] = listing.json()["results"]
    assert entry["toObjectId"] == company
    assert {(t["category"], t["label"]) for t in entry["associationTypes"]} == {
        ("HUBSPOT_DEFINED", None), ("USER_DEFINED", "Billing contact")}
    inverse = await api.get(f"/crm/v4/objects/companies/{company}/associations/contacts")
    assert "Billed" in {t["label"] for t in inverse.json()["results"][0]["associationTypes"]}

    read = await api.get(f"/crm/v3/objects/contacts/{contact}", params={"associations": "companies"})
    assert read.json()["associations"]["companies"]["results"][0]["id"] == company

    search = await api.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": [
        {"propertyName": "associations.company", "operator": "EQ", "value": company}]}]})
    assert [r["id"] for r in search.json()["results"]] == [contact]

    primary = await api.put(f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}",
                            json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])
    assert primary.status_code == 201
    assert primary.json()["labels"] == ["Primary"]  # the PUT replaced the label set
    second = await api.put(f"/crm/v4/objects/contacts/{contact}/associations/companies/{other}",
                           json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])
    assert second.status_code == 400 and "primary" in second.json()["message"]

    wrong_pair = await api.put(f"/crm/v4/objects/contacts/{contact}/associations/deals/{company}",
                               json=[{"associationCategory": "USER_DEFINED", "associationTypeId": forward_id}])
    assert wrong_pair.status_code == 400

    assert (await api.delete(f"/crm/v4/objects/contacts/{contact}/associations/companies/{company}")).status_code == 204
    assert (await api.get(f"/crm/v4/objects/contacts/{contact}/associations/companies")).json()["results"] == []


async def test_an_eleventh_label_is_refused(api: httpx.AsyncClient) -> None:
    for i in range(10):
        ok = await api.post("/crm/v4/associations/deals/companies/labels", json={"label": f"L{i}", "name": f"l{i}"})
        assert ok.status_code == 200, ok.text
    eleventh = await api.post("/crm/v4/associations/deals/companies/labels", json={"label": "L10", "name": "l10"})
    assert eleventh.status_code == 400 and "10" in eleventh.json()["message"]


async def test_batch_associations_and_create_with_associations(api: httpx.AsyncClient) -> None:
    company = await make(api, "companies", name="Batchco")
    contacts = [await make(api, "contacts", email=f"b{i}@example.com") for i in range(3)]
    created = await api.post("/crm/v4/associations/contacts/companies/batch/associate/default",
                             json={"inputs": [{"from": {"id": c}, "to": {"id": company}} for c in contacts]})
    assert created.status_code == 200, created.text
    read = await api.post("/crm/v4/associations/companies/contacts/batch/read", json={"inputs": [{"id": company}]})
    assert {t["toObjectId"] for t in read.json()["results"][0]["to"]} == set(contacts)

    with_assoc = await api.post("/crm/v3/objects/deals", json={
        "properties": {"dealname": "Big", "pipeline": "default", "dealstage": "closedwon"},
        "associations": [{"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                            "associationTypeId": 341}]}]})
    assert with_assoc.status_code == 201, with_assoc.text
    deal = with_assoc.json()["id"]
    assert (await api.get(f"/crm/v4/objects/companies/{company}/associations/deals")).json()["results"][0][
        "toObjectId"] == deal

    archived = await api.post("/crm/v4/associations/contacts/companies/batch/archive",
                              json={"inputs": [{"from": {"id": contacts[0]}, "to": [{"id": company}]}]})
    assert archived.status_code == 204
    again = await api.post("/crm/v4/associations/companies/contacts/batch/read", json={"inputs": [{"id": company}]})
    assert {t["toObjectId"] for t in again.json()["results"][0]["to"]} == set(contacts[1:])


async def test_gdpr_delete_removes_record_history_and_unique_values(api: httpx.AsyncClient) -> None:
    created = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "forget@example.com"}},
                             headers={"x-request-id": "req-gdpr-create"})
    contact = created.json()["id"]
    await api.patch(f"/crm/v3/objects/contacts/{contact}", json={"properties": {"firstname": "Gone"}})
    journal_url = "/internal/v1/operations/request:req-gdpr-create/journal"
    assert [e["recordId"] for e in (await api.get(journal_url)).json()["results"]] == [contact]
    gone = await api.post("/crm/v3/objects/contacts/gdpr-delete", json={"objectId": "forget@example.com",
                                                                        "idProperty": "email"})
    assert gone.status_code == 204
    assert (await api.get(f"/crm/v3/objects/contacts/{contact}", params={"archived": "true"})).status_code == 404
    assert (await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "forget@example.com"}})
            ).status_code == 201
    assert (await api.get(journal_url)).json()["results"] == []  # its journal entries went with it


async def test_batch_create_reports_missing_records_and_writes_the_rest(api: httpx.AsyncClient) -> None:
    company = await make(api, "companies", name="Partial")
    contact = await make(api, "contacts", email="partial@example.com")
    response = await api.post("/crm/v4/associations/contacts/companies/batch/create", json={"inputs": [
        {"from": {"id": contact}, "to": {"id": company},
         "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]},
        {"from": {"id": "987654321"}, "to": {"id": company}, "types": []},
    ]})
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["results"][0]["labels"] == ["Primary"]
    assert body["numErrors"] == 1 and "987654321" in body["errors"][0]["message"]
    two_primaries = await api.post("/crm/v4/associations/contacts/companies/batch/create", json={"inputs": [
        {"from": {"id": contact}, "to": {"id": await make(api, "companies", name="Other")},
         "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]}]})
    assert two_primaries.status_code == 207 and "primary" in two_primaries.json()["errors"][0]["message"]

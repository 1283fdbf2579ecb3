"""Hostile input to records-svc answers 400 with HubSpot's body naming the field, and concurrent upserts of
the same new records answer 200: each case here answered 500 before."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

BIG = "9" * 30
BIGINT_PLUS_ONE = str(2**63)


def assert_400(response: httpx.Response, where: str | None = None, code: str | None = None) -> dict:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == "error" and body["category"] == "VALIDATION_ERROR" and body["message"]
    if where is not None:
        assert any(e.get("in") == where for e in body.get("errors", [])), body
    if code is not None:
        assert any(e.get("code") == code for e in body.get("errors", [])), body
    return body


@pytest.mark.parametrize("record_id", [BIG, BIGINT_PLUS_ONE, "%C2%B2", "12%C2%B2", "abc", "-1"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_record_ids_that_are_no_ids_are_400(api: httpx.AsyncClient, record_id: str, method: str) -> None:
    body = {"json": {"properties": {"firstname": "x"}}} if method == "PATCH" else {}
    response = await api.request(method, f"/crm/v3/objects/contacts/{record_id}", **body)  # type: ignore[arg-type]
    assert_400(response, "objectId", "INVALID_ID")
    restore = await api.post(f"/corral/v1/records/contacts/{record_id}/restore")
    assert_400(restore, "objectId", "INVALID_ID")


async def test_an_id_property_lookup_still_takes_any_value(api: httpx.AsyncClient) -> None:
    response = await api.get("/crm/v3/objects/contacts/nobody@example.com", params={"idProperty": "email"})
    assert response.status_code == 404


@pytest.mark.parametrize("after", ["99999999999999999999", "²", "x"])
async def test_paging_cursors_that_are_no_cursors_are_400(api: httpx.AsyncClient, after: str) -> None:
    assert_400(await api.get("/crm/v3/objects/contacts", params={"after": after}), "after", "INVALID_PAGING_CURSOR")
    assert_400(await api.post("/crm/v3/objects/contacts/search", json={"after": after}), "after")
    assert_400(await api.get("/crm/v4/objects/contacts/1/associations/companies", params={"after": after}), "after")
    assert_400(await api.post("/crm/v4/associations/contacts/companies/batch/read",
                              json={"inputs": [{"id": "1", "after": after}]}), "inputs[0].after")


async def test_association_ids_and_type_ids_out_of_range_are_400(api: httpx.AsyncClient) -> None:
    assert_400(await api.get(f"/crm/v4/objects/contacts/{BIG}/associations/companies"), "fromObjectId")
    assert_400(await api.put(f"/crm/v4/objects/contacts/1/associations/companies/{BIGINT_PLUS_ONE}",
                             json=[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]),
               "toObjectId")
    too_big = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 2**70}]
    assert_400(await api.put("/crm/v4/objects/contacts/1/associations/companies/2", json=too_big),
               "0.associationTypeId")
    assert_400(await api.post("/crm/v4/associations/contacts/companies/batch/create",
                              json={"inputs": [{"from": {"id": "1"}, "to": {"id": "2"}, "types": too_big}]}))
    assert_400(await api.post("/crm/v4/associations/contacts/companies/batch/create",
                              json={"inputs": [{"from": {"id": BIG}, "to": {"id": "2"}, "types": []}]}),
               "inputs[0].from.id")
    assert_400(await api.put("/crm/v4/associations/contacts/companies/labels",
                             json={"associationTypeId": 2**70, "label": "x"}))
    assert_400(await api.delete(f"/crm/v4/associations/contacts/companies/labels/{2**70}"))
    assert_400(await api.post("/crm/v3/objects/contacts", json={
        "properties": {"email": f"{uuid.uuid4().hex}@example.com"},
        "associations": [{"to": {"id": BIG}, "types": [{"associationTypeId": 1}]}]}), "associations[0].to.id")


async def test_batch_ids_out_of_range_are_missing_or_400(api: httpx.AsyncClient) -> None:
    read = await api.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": BIG}, {"id": "²"}]})
    assert read.status_code == 207 and read.json()["errors"][0]["context"]["ids"] == [BIG, "²"]
    update = await api.post("/crm/v3/objects/contacts/batch/update",
                            json={"inputs": [{"id": BIG, "properties": {"firstname": "x"}}]})
    assert update.status_code == 207
    assert_400(await api.post("/crm/v3/objects/contacts/batch/archive", json={"inputs": [{"id": "²"}]}), "id")
    upsert = await api.post("/crm/v3/objects/contacts/batch/upsert",
                            json={"inputs": [{"id": "²", "properties": {"firstname": "x"}}]})
    assert_400(upsert)
    gdpr = await api.post("/crm/v3/objects/contacts/gdpr-delete", json={"objectId": BIG})
    assert gdpr.status_code == 404


@pytest.mark.parametrize("bad", ["a\u0000b", "\ud800", "x\udfff"])
async def test_unstorable_text_anywhere_is_400_naming_the_field(api: httpx.AsyncClient, bad: str) -> None:
    def raw(document: str) -> dict:
        # json= would refuse to encode a lone surrogate; clients send it as a \u escape.
        return {"content": document.replace("BAD", bad.encode("unicode_escape").decode().replace("\\x00", "\\u0000")),
                "headers": {"content-type": "application/json"}}

    body = assert_400(await api.post("/crm/v3/objects/contacts",
                                     **raw('{"properties": {"email": "a@b.example", "firstname": "BAD"}}')),
                      "properties.firstname", "INVALID_CHARACTER")
    assert body["errors"][0]["context"] == {"propertyName": ["firstname"]}
    assert_400(await api.post("/crm/v3/objects/contacts/search",
                              **raw('{"filterGroups": [{"filters": [{"propertyName": "firstname", '
                                    '"operator": "EQ", "value": "BAD"}]}]}')),
               "filterGroups[0].filters[0].value")
    assert_400(await api.post("/crm/v3/objects/contacts/search", **raw('{"query": "BAD"}')), "query")
    assert_400(await api.post("/crm/v3/properties/contacts",
                              **raw('{"name": "p1", "label": "BAD", "type": "string", "fieldType": "text", '
                                    '"groupName": "contactinformation"}')), "label")
    assert_400(await api.post("/crm/v4/associations/contacts/companies/labels",
                              **raw('{"label": "BAD", "name": "n"}')), "label")
    assert_400(await api.post("/crm/v3/objects/contacts/batch/upsert",
                              **raw('{"inputs": [{"id": "BAD", "idProperty": "email", "properties": {}}]}')),
               "inputs[0].id")


async def test_nul_in_paths_and_queries_is_400(api: httpx.AsyncClient) -> None:
    assert_400(await api.get("/crm/v3/objects/contacts/a%00b", params={"idProperty": "email"}), "path")
    assert_400(await api.get("/crm/v3/objects/contacts/1", params={"properties": "a\x00b"}), "properties")
    assert_400(await api.get("/crm/v3/objects/contacts", params={"idProperty\x00": "x"}))


async def test_huge_custom_object_type_ids_and_names_are_unknown_types(api: httpx.AsyncClient) -> None:
    for key in (f"2-{BIG}", f"2-{BIGINT_PLUS_ONE}", "2-²", "x" * 1000):
        assert_400(await api.get(f"/crm/v3/objects/{key}"))
        assert_400(await api.get(f"/crm/v3/properties/{key}"))
    long_name = await api.post("/crm-object-schemas/v3/schemas", json={
        "name": "x" * 1000, "labels": {"singular": "X", "plural": "Xs"}, "primaryDisplayProperty": "n",
        "requiredProperties": ["n"], "properties": [{"name": "n", "label": "N", "type": "string",
                                                     "fieldType": "text"}], "associatedObjects": ["CONTACT"]})
    assert_400(long_name)
    schema_path = await api.get(f"/crm-object-schemas/v3/schemas/{'y' * 1000}")
    assert schema_path.status_code in (400, 404) and schema_path.json()["status"] == "error"


async def test_display_orders_out_of_range_are_400(api: httpx.AsyncClient) -> None:
    assert_400(await api.post("/crm/v3/properties/contacts", json={
        "name": f"p_{uuid.uuid4().hex[:8]}", "label": "P", "type": "string", "fieldType": "text",
        "groupName": "contactinformation", "displayOrder": 2**40}), "displayOrder")


async def test_search_with_a_trailing_slash_is_served(api: httpx.AsyncClient) -> None:
    response = await api.post("/crm/v3/objects/contacts/search/", json={})
    assert response.status_code == 200 and "location" not in response.headers
    assert response.json()["total"] == 0


async def test_concurrent_upserts_of_the_same_new_emails_all_succeed(api: httpx.AsyncClient) -> None:
    """20 parallel batch upserts of the same 100 new emails: 16-19 of 20 answered 500 (UniqueRace)."""
    for _ in range(3):
        tag = uuid.uuid4().hex[:8]
        emails = [f"race-{i}-{tag}@example.com" for i in range(100)]
        body = {"inputs": [{"id": e, "idProperty": "email", "properties": {"firstname": f"F{i}"}}
                           for i, e in enumerate(emails)]}
        responses = await asyncio.gather(*[api.post("/crm/v3/objects/contacts/batch/upsert", json=body)
                                           for _ in range(20)])
        statuses = [r.status_code for r in responses]
        assert all(s in (200, 409) for s in statuses), [r.text for r in responses if r.status_code not in (200, 409)]
        assert all(r.headers.get("retry-after") for r in responses if r.status_code == 409)
        assert statuses.count(200) >= 10, statuses
        ids = {tuple(sorted(x["id"] for x in r.json()["results"])) for r in responses if r.status_code == 200}
        assert len(ids) == 1 and len(next(iter(ids))) == 100, "every winner saw the same 100 records"
        created = sum(x["new"] for r in responses if r.status_code == 200 for x in r.json()["results"])
        assert created == 100, "each record was created once"
        found = await api.post("/crm/v3/objects/contacts/search", json={
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN", "values": emails}]}],
            "limit": 200})
        assert found.json()["total"] == 100


@pytest.mark.parametrize("value", [BIG, BIGINT_PLUS_ONE, "²", "12²"])
async def test_search_values_that_are_no_ids_are_400(api: httpx.AsyncClient, value: str) -> None:
    for filters in ([{"propertyName": "hs_object_id", "operator": "EQ", "value": value}],
                    [{"propertyName": "associations.company", "operator": "EQ", "value": value}],
                    [{"propertyName": "associations.company", "operator": "IN", "values": ["1", value]}]):
        response = await api.post("/crm/v3/objects/contacts/search", json={"filterGroups": [{"filters": filters}]})
        assert_400(response)

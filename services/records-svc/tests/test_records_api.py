"""records-svc's HubSpot-compatible API against real Postgres, real migrations and a real broker."""

from __future__ import annotations

import asyncio

import aio_pika
import httpx
import pytest
from crm_common.cloudevents import CloudEvent, decode_events
from crm_common.db import make_engine
from crm_common.settings import DEFAULT_AMQP_URL
from crm_common.testing import signed_headers
from records_svc import repository
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker


async def create_contact(api: httpx.AsyncClient, **props: str) -> dict:
    response = await api.post("/crm/v3/objects/contacts", json={"properties": props})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_read_update_archive_restore_cycle(api: httpx.AsyncClient) -> None:
    created = await create_contact(api, email="Ada@Example.com", firstname="Ada", lastname="Lovelace")
    assert created["properties"]["email"] == "ada@example.com"
    assert created["properties"]["hs_object_id"] == created["id"]
    record_id = created["id"]

    read = await api.get(f"/crm/v3/objects/contacts/{record_id}", params={"properties": "firstname,email"})
    assert read.status_code == 200
    assert read.json()["properties"]["firstname"] == "Ada"

    by_email = await api.get("/crm/v3/objects/contact/ada@example.com", params={"idProperty": "email"})
    assert by_email.json()["id"] == record_id

    updated = await api.patch(f"/crm/v3/objects/0-1/{record_id}", json={"properties": {"firstname": "Augusta"}})
    assert updated.status_code == 200
    assert updated.json()["properties"]["firstname"] == "Augusta"

    history = await api.get(f"/crm/v3/objects/contacts/{record_id}", params={"propertiesWithHistory": "firstname"})
    versions = history.json()["propertiesWithHistory"]["firstname"]
    assert [v["value"] for v in versions] == ["Augusta", "Ada"]
    assert all(v["sourceType"] == "API" for v in versions)

    assert (await api.delete(f"/crm/v3/objects/contacts/{record_id}")).status_code == 204
    assert (await api.get(f"/crm/v3/objects/contacts/{record_id}")).status_code == 404
    archived = await api.get(f"/crm/v3/objects/contacts/{record_id}", params={"archived": "true"})
    assert archived.json()["archived"] is True

    restored = await api.post(f"/corral/v1/records/contacts/{record_id}/restore")
    assert restored.status_code == 200 and restored.json()["archived"] is False
    assert (await api.get(f"/crm/v3/objects/contacts/{record_id}")).status_code == 200
    assert (await api.post("/corral/v1/records/contacts/987654321/restore")).status_code == 404


async def test_duplicate_email_is_a_409_with_the_existing_id(api: httpx.AsyncClient) -> None:
    first = await create_contact(api, email="dup@example.com")
    again = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "DUP@example.com"}})
    assert again.status_code == 409
    body = again.json()
    assert body["message"] == f"Contact already exists. Existing ID: {first['id']}"
    assert body["category"] == "CONFLICT"
    # An additional email shares the namespace.
    other = await create_contact(api, email="other@example.com")
    clash = await api.patch(f"/crm/v3/objects/contacts/{other['id']}",
                            json={"properties": {"hs_additional_emails": "dup@example.com"}})
    assert clash.status_code == 409


async def test_email_is_unique_per_account_only(records_app_client: httpx.AsyncClient, account_id: int) -> None:
    for account in (account_id, account_id + 50_000):
        response = await records_app_client.post("/crm/v3/objects/contacts", headers=signed_headers(account),
                                                 json={"properties": {"email": "shared@example.com"}})
        assert response.status_code == 201, response.text
    other = await records_app_client.get("/crm/v3/objects/contacts/shared@example.com",
                                         params={"idProperty": "email"}, headers=signed_headers(account_id + 99_999))
    assert other.status_code == 404


async def test_bad_input_names_the_problem(api: httpx.AsyncClient) -> None:
    unknown = await api.post("/crm/v3/objects/contacts", json={"properties": {"nope": "x"}})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert "nope" in unknown.json()["message"]

    bad_number = await api.post("/crm/v3/objects/companies", json={"properties": {"numberofemployees": "many"}})
    assert bad_number.status_code == 400
    assert bad_number.json()["errors"][0]["context"]["propertyName"] == ["numberofemployees"]

    bad_option = await api.post("/crm/v3/objects/contacts", json={"properties": {"lifecyclestage": "royalty"}})
    assert bad_option.status_code == 400
    assert bad_option.json()["errors"][0]["code"] == "INVALID_OPTION"

    bad_email = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "not-an-email"}})
    assert bad_email.status_code == 400
    assert bad_email.json()["errors"][0]["code"] == "INVALID_EMAIL"

    malformed = await api.post("/crm/v3/objects/contacts", content=b"{nope", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["category"] == "VALIDATION_ERROR"

    unknown_type = await api.get("/crm/v3/objects/spaceships")
    assert unknown_type.status_code == 400
    assert "spaceships" in unknown_type.json()["message"]

    bad_id = await api.post("/crm/v3/objects/contacts/batch/archive", json={"inputs": [{"id": "abc"}]})
    assert bad_id.status_code == 400

    too_many = await api.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": str(i)} for i in range(101)]})
    assert too_many.status_code == 400
    assert "100" in too_many.json()["message"]

    deal_missing = await api.post("/crm/v3/objects/deals", json={"properties": {"dealname": "x"}})
    assert deal_missing.status_code == 400
    assert {e["context"]["propertyName"][0] for e in deal_missing.json()["errors"]} == {"pipeline", "dealstage"}


async def test_unsigned_requests_are_refused(records_app_client: httpx.AsyncClient) -> None:
    response = await records_app_client.get("/crm/v3/objects/contacts", headers={"x-corral-auth": "forged.value"})
    assert response.status_code == 401


async def test_lifecycle_stage_only_moves_forward_unless_cleared(api: httpx.AsyncClient) -> None:
    contact = await create_contact(api, email="life@example.com", lifecyclestage="customer")
    url = f"/crm/v3/objects/contacts/{contact['id']}"
    back = await api.patch(url, json={"properties": {"lifecyclestage": "lead"}})
    assert back.json()["properties"]["lifecyclestage"] == "customer"
    forward = await api.patch(url, json={"properties": {"lifecyclestage": "evangelist"}})
    assert forward.json()["properties"]["lifecyclestage"] == "evangelist"
    await api.patch(url, json={"properties": {"lifecyclestage": ""}})
    again = await api.patch(url, json={"properties": {"lifecyclestage": "lead"}})
    assert again.json()["properties"]["lifecyclestage"] == "lead"


async def test_list_pages_with_after(api: httpx.AsyncClient) -> None:
    ids = [(await create_contact(api, email=f"page{i}@example.com"))["id"] for i in range(5)]
    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = (await api.get("/crm/v3/objects/contacts", params=params)).json()
        seen.extend(r["id"] for r in page["results"])
        if "paging" not in page:
            break
        after = page["paging"]["next"]["after"]
    assert seen == ids


async def test_batch_create_read_update_upsert_archive(api: httpx.AsyncClient) -> None:
    created = await api.post("/crm/v3/objects/companies/batch/create", json={"inputs": [
        {"properties": {"name": "Acme", "domain": "https://www.Acme.com/about"}},
        {"properties": {"name": "Globex", "domain": "globex.com"}},
    ]})
    assert created.status_code == 201
    results = created.json()["results"]
    assert results[0]["properties"]["domain"] == "acme.com"
    ids = [r["id"] for r in results]

    read = await api.post("/crm/v3/objects/companies/batch/read",
                          json={"inputs": [{"id": ids[0]}, {"id": "999999999"}], "properties": ["name"]})
    assert read.status_code == 207
    assert read.json()["errors"][0]["context"]["ids"] == ["999999999"]

    updated = await api.post("/crm/v3/objects/companies/batch/update",
                             json={"inputs": [{"id": ids[1], "properties": {"name": "Globex Corp"}}]})
    assert updated.status_code == 200
    assert updated.json()["results"][0]["properties"]["name"] == "Globex Corp"

    await create_contact(api, email="up1@example.com", firstname="Old")
    upserted = await api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
        {"id": "up1@example.com", "idProperty": "email", "properties": {"firstname": "New"}},
        {"id": "up2@example.com", "idProperty": "email", "properties": {"firstname": "Fresh"}},
    ]})
    assert upserted.status_code == 200, upserted.text
    by_email = {r["properties"].get("email") or "": r for r in upserted.json()["results"]}
    flags = sorted((r["new"], r["properties"]["firstname"]) for r in upserted.json()["results"])
    assert flags == [(False, "New"), (True, "Fresh")]
    assert by_email

    archived = await api.post("/crm/v3/objects/companies/batch/archive", json={"inputs": [{"id": i} for i in ids]})
    assert archived.status_code == 204
    listing = (await api.get("/crm/v3/objects/companies")).json()
    assert listing["results"] == []


async def test_search_operators(api: httpx.AsyncClient) -> None:
    await create_contact(api, email="john.doe@acme.com", firstname="John", lastname="Doe", lifecyclestage="lead")
    await create_contact(api, email="jane@globex.com", firstname="Jane", lastname="Roe", lifecyclestage="customer")
    await create_contact(api, email="zed@acme.com", firstname="Zed")

    async def search(body: dict) -> dict:
        response = await api.post("/crm/v3/objects/contacts/search", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def emails(result: dict) -> set[str]:
        return {r["properties"]["email"] for r in result["results"]}

    def one(prop: str, op: str, **kw: object) -> dict:
        return {"filterGroups": [{"filters": [{"propertyName": prop, "operator": op, **kw}]}], "limit": 50}

    assert emails(await search(one("email", "EQ", value="JOHN.DOE@acme.com"))) == {"john.doe@acme.com"}
    assert emails(await search(one("email", "NEQ", value="john.doe@acme.com"))) == {"jane@globex.com", "zed@acme.com"}
    assert emails(await search(one("email", "CONTAINS_TOKEN", value="*@acme.com"))) == {"john.doe@acme.com", "zed@acme.com"}
    assert emails(await search(one("lastname", "NOT_CONTAINS_TOKEN", value="doe"))) == {"jane@globex.com", "zed@acme.com"}
    assert emails(await search(one("lastname", "HAS_PROPERTY"))) == {"john.doe@acme.com", "jane@globex.com"}
    assert emails(await search(one("lastname", "NOT_HAS_PROPERTY"))) == {"zed@acme.com"}
    assert emails(await search(one("lifecyclestage", "IN", values=["lead", "customer"]))) == {"john.doe@acme.com", "jane@globex.com"}
    assert emails(await search(one("lifecyclestage", "NOT_IN", values=["lead"]))) == {"jane@globex.com", "zed@acme.com"}
    assert emails(await search({"query": "doe"})) == {"john.doe@acme.com"}
    assert emails(await search({"query": "ja"})) == {"jane@globex.com"}
    either = {"filterGroups": [{"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "john"}]},
                               {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "zed"}]}]}
    assert emails(await search(either)) == {"john.doe@acme.com", "zed@acme.com"}
    ordered = await search({"sorts": [{"propertyName": "firstname", "direction": "DESCENDING"}], "limit": 2})
    assert [r["properties"]["email"] for r in ordered["results"]] == ["zed@acme.com", "john.doe@acme.com"]
    assert ordered["total"] == 3 and ordered["paging"]["next"]["after"] == "2"

    # The index holds the words of every value: after a line break, inside a URL, a hyphenated
    # name or a quoted phrase (the tokens are read from the values' JSON text).
    await create_contact(api, email="ann@x.io", firstname="Ann-Marie", address="1 Main St\nSuite 9\tEast",
                         website="https://shop.example.org/path", jobtitle='Head of "Growth"')
    assert emails(await search(one("address", "CONTAINS_TOKEN", value="suite"))) == {"ann@x.io"}
    assert emails(await search(one("address", "CONTAINS_TOKEN", value="east"))) == {"ann@x.io"}
    assert emails(await search(one("website", "CONTAINS_TOKEN", value="shop"))) == {"ann@x.io"}
    assert emails(await search(one("firstname", "CONTAINS_TOKEN", value="marie"))) == {"ann@x.io"}
    assert emails(await search(one("jobtitle", "CONTAINS_TOKEN", value="growth"))) == {"ann@x.io"}
    assert emails(await search({"query": "ann-marie"})) == {"ann@x.io"}

    bad = await api.post("/crm/v3/objects/contacts/search", json=one("nope", "EQ", value="x"))
    assert bad.status_code == 400
    too_far = await api.post("/crm/v3/objects/contacts/search", json={"after": "9950", "limit": 100})
    assert too_far.status_code == 400


async def test_search_numbers_and_dates(api: httpx.AsyncClient) -> None:
    for name, employees, day in (("Small", "5", "2024-01-10"), ("Mid", "50", "2024-03-01"), ("Big", "5000", "2024-06-30")):
        r = await api.post("/crm/v3/objects/deals", json={"properties": {
            "dealname": name, "pipeline": "default", "dealstage": "qualifiedtobuy", "amount": employees,
            "closedate": f"{day}T00:00:00Z"}})
        assert r.status_code == 201, r.text

    async def names(filters: list[dict]) -> set[str]:
        r = await api.post("/crm/v3/objects/deals/search", json={"filterGroups": [{"filters": filters}],
                                                                  "properties": ["dealname"]})
        assert r.status_code == 200, r.text
        return {x["properties"]["dealname"] for x in r.json()["results"]}

    assert await names([{"propertyName": "amount", "operator": "GT", "value": "49"}]) == {"Mid", "Big"}
    assert await names([{"propertyName": "amount", "operator": "BETWEEN", "value": "5", "highValue": "50"}]) == {"Small", "Mid"}
    assert await names([{"propertyName": "closedate", "operator": "LT", "value": "1709251200000"}]) == {"Small"}
    assert await names([{"propertyName": "closedate", "operator": "GTE", "value": "2024-03-01T00:00:00Z"}]) == {"Mid", "Big"}


async def test_properties_api(api: httpx.AsyncClient) -> None:
    listing = await api.get("/crm/v3/properties/contacts")
    assert any(p["name"] == "email" and p["hasUniqueValue"] for p in listing.json()["results"])

    group = await api.post("/crm/v3/properties/contacts/groups", json={"name": "loyalty", "label": "Loyalty"})
    assert group.status_code == 201
    created = await api.post("/crm/v3/properties/contacts", json={
        "name": "tier", "label": "Tier", "type": "enumeration", "fieldType": "select", "groupName": "loyalty",
        "options": [{"label": "Gold", "value": "gold"}, {"label": "Silver", "value": "silver"}]})
    assert created.status_code == 201, created.text
    clash = await api.post("/crm/v3/properties/contacts", json={
        "name": "tier", "label": "Tier", "type": "string", "fieldType": "text", "groupName": "loyalty"})
    assert clash.status_code == 409
    mismatch = await api.post("/crm/v3/properties/contacts", json={
        "name": "score", "label": "Score", "type": "number", "fieldType": "select", "groupName": "loyalty"})
    assert mismatch.status_code == 400

    ok = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "t@x.com", "tier": "Gold"}})
    assert ok.json()["properties"]["tier"] == "gold"
    bad = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "t2@x.com", "tier": "bronze"}})
    assert bad.status_code == 400

    unique = await api.post("/crm/v3/properties/contacts", json={
        "name": "member_no", "label": "Member number", "type": "string", "fieldType": "text",
        "groupName": "loyalty", "hasUniqueValue": True})
    assert unique.status_code == 201
    await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "m1@x.com", "member_no": "A1"}})
    dup = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "m2@x.com", "member_no": "A1"}})
    assert dup.status_code == 409

    assert (await api.delete("/crm/v3/properties/contacts/tier")).status_code == 204
    gone = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "t3@x.com", "tier": "gold"}})
    assert gone.status_code == 400
    assert (await api.delete("/crm/v3/properties/contacts/email")).status_code == 400


async def test_bulk_upsert_dedupes_and_reports_per_row(api: httpx.AsyncClient) -> None:
    existing = await create_contact(api, email="known@example.com", firstname="Known", city="Paris")
    response = await api.post("/internal/v1/records/contacts/bulk-upsert", json={
        "operation": "UPSERT", "idProperty": "email", "sourceType": "IMPORT", "sourceId": "imp-1",
        "keepExisting": ["city"],
        "rows": [
            {"ref": 1, "properties": {"email": "KNOWN@example.com", "firstname": "Updated", "city": "Rome"}},
            {"ref": 2, "properties": {"email": "new@example.com", "firstname": "First"}},
            {"ref": 3, "properties": {"email": "new@example.com", "lastname": "Second"}},
            {"ref": 4, "properties": {"email": "broken", "firstname": "X"}},
            {"ref": 5, "properties": {"email": "ok@example.com", "date_of_birth": "31/31/2020"}},
        ]})
    assert response.status_code == 200, response.text
    results = {r["ref"]: r for r in response.json()["results"]}
    assert results[1]["status"] == "UPDATED" and results[1]["id"] == existing["id"]
    assert results[2]["status"] == results[3]["status"] == "CREATED"
    assert results[2]["id"] == results[3]["id"]
    assert results[4]["status"] == "ERROR" and results[4]["errors"][0]["code"] == "INVALID_EMAIL"
    assert results[5]["status"] == "CREATED"
    assert results[5]["errors"][0] == {"code": "COULD_NOT_PARSE_DATE", "message": results[5]["errors"][0]["message"],
                                       "property": "date_of_birth", "value": "31/31/2020"}

    known = (await api.get(f"/crm/v3/objects/contacts/{existing['id']}",
                           params={"properties": "firstname,city", "propertiesWithHistory": "firstname"})).json()
    assert known["properties"] == {**known["properties"], "firstname": "Updated", "city": "Paris"}
    assert known["propertiesWithHistory"]["firstname"][0]["sourceType"] == "IMPORT"
    merged = (await api.get(f"/crm/v3/objects/contacts/{results[2]['id']}",
                            params={"properties": "firstname,lastname"})).json()
    assert (merged["properties"]["firstname"], merged["properties"]["lastname"]) == ("First", "Second")

    # A record created in bulk stores its creation source once; readers still get one version per value,
    # and a later change stacks on top of it.
    def history_of(record: dict, name: str) -> list[tuple[str, str, str | None]]:
        return [(v["value"], v["sourceType"], v.get("sourceId")) for v in record["propertiesWithHistory"][name]]

    url = f"/crm/v3/objects/contacts/{results[2]['id']}"
    created = (await api.get(url, params={"propertiesWithHistory": "firstname,lastname,email"})).json()
    assert history_of(created, "firstname") == [("First", "IMPORT", "imp-1")]
    assert history_of(created, "email") == [("new@example.com", "IMPORT", "imp-1")]
    assert created["propertiesWithHistory"]["lastname"][0]["timestamp"] == \
        created["propertiesWithHistory"]["firstname"][0]["timestamp"]
    assert (await api.patch(url, json={"properties": {"firstname": "Changed"}})).status_code == 200
    changed = (await api.get(url, params={"propertiesWithHistory": "firstname,lastname"})).json()
    assert [v for v, _, _ in history_of(changed, "firstname")] == ["Changed", "First"]
    assert history_of(changed, "firstname")[1] == ("First", "IMPORT", "imp-1")
    assert history_of(changed, "lastname") == [("Second", "IMPORT", "imp-1")]


async def test_bulk_upsert_refuses_malformed_bodies_with_the_reason(api: httpx.AsyncClient) -> None:
    url = "/internal/v1/records/contacts/bulk-upsert"
    cases = [
        (b"{not json", "Invalid JSON body"),
        (b"[]", "must be a JSON object"),
        (b'{"operation": "UPSERT"}', "rows must be a list"),
        (b'{"operation": "MERGE", "rows": []}', "operation"),
        (b'{"rows": [{"ref": "1", "properties": {}}]}', "rows[0] must be"),
        (b'{"rows": [{"ref": 1, "properties": {}}, {"ref": 1, "properties": {}}]}', "rows[1]: ref 1 appears twice"),
        (b'{"rows": [{"ref": 1, "properties": {"city": {"a": 1}}}]}', "rows[0].properties.city"),
    ]
    for body, reason in cases:
        response = await api.post(url, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (body, response.text)
        assert reason in response.json()["message"], (body, response.json())
    assert (await api.get("/crm/v3/objects/contacts")).json()["results"] == []


async def test_committed_writes_are_published_and_rolled_back_ones_are_not(api: httpx.AsyncClient,
                                                                           account_id: int) -> None:
    connection = await aio_pika.connect(DEFAULT_AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange("corral.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="record.*")
        failed = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "evt@example.com",
                                                                                 "lifecyclestage": "royalty"}})
        assert failed.status_code == 400
        created = await create_contact(api, email="evt@example.com")
        await api.patch(f"/crm/v3/objects/contacts/{created['id']}", json={"properties": {"firstname": "E"}})
        mine: list[CloudEvent] = []
        for _ in range(300):
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                if len(mine) >= 2:
                    break
                await asyncio.sleep(0.1)
                continue
            mine += [e for e in decode_events(message.body, message.content_type) if e.corralaccount == account_id]
        assert [(e.type, e.data["id"]) for e in mine] == [("record.created", created["id"]),
                                                          ("record.updated", created["id"])]
        assert mine[1].data["changes"] == {"firstname": "E"}
    finally:
        await connection.close()


async def test_batch_upsert_is_all_or_nothing(api: httpx.AsyncClient) -> None:
    bad = await api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
        {"id": "fine@example.com", "idProperty": "email", "properties": {"firstname": "Fine"}},
        {"id": "worse@example.com", "idProperty": "email", "properties": {"lifecyclestage": "royalty"}},
    ]})
    assert bad.status_code == 400 and "royalty" in bad.json()["message"]
    missing = await api.get("/crm/v3/objects/contacts/fine@example.com", params={"idProperty": "email"})
    assert missing.status_code == 404
    mixed = await api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
        {"id": "a@example.com", "idProperty": "email", "properties": {}},
        {"id": "1", "properties": {}},
    ]})
    assert mixed.status_code == 400 and "idProperty" in mixed.json()["message"]
    bad_key = await api.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": [
        {"id": "not-an-email", "idProperty": "email", "properties": {"firstname": "X"}}]})
    assert bad_key.status_code == 400 and bad_key.json()["errors"][0]["code"] == "INVALID_EMAIL"


@pytest.mark.parametrize("claims", [3, 450], ids=["statement", "copy"])
async def test_claims_report_values_another_record_holds(api: httpx.AsyncClient, account_id: int,
                                                         records_database: str, claims: int) -> None:
    """Both claim paths (a statement for a few claims, COPY for many) name the values already taken."""
    owner = await create_contact(api, email=f"taken{claims}@claims.io")
    engine = make_engine(records_database, pool_size=1)
    try:
        async with async_sessionmaker(engine)() as session, session.begin():
            claimants = (await session.execute(text(
                "INSERT INTO records (account_id, object_type_id) SELECT :a, '0-1' FROM generate_series(1, :n) "
                "RETURNING id"), {"a": account_id, "n": claims})).scalars().all()
            wanted = [("email", f"free{i}-{claims}@claims.io", record_id) for i, record_id in enumerate(claimants)]
            wanted[-1] = ("email", f"taken{claims}@claims.io", claimants[-1])
            conflicts = await repository.claim_unique_values(session, account_id, "0-1", wanted)
            assert conflicts == [("email", f"taken{claims}@claims.io", int(owner["id"]))]
            await session.rollback()
    finally:
        await engine.dispose()


async def test_concurrent_bulk_writes_of_the_same_keys_both_succeed(api: httpx.AsyncClient) -> None:
    """Two callers upserting the same emails in opposite orders race for the same unique values and
    lock the same rows in opposite orders; records-svc retries the losing transaction instead of failing."""
    emails = [f"race{i}@concurrent.io" for i in range(1_500)]

    async def upsert(order: list[str], name: str) -> httpx.Response:
        return await api.post("/internal/v1/records/contacts/bulk-upsert", json={
            "operation": "UPSERT", "idProperty": "email", "sourceType": "IMPORT",
            "rows": [{"ref": i, "properties": {"email": e, "firstname": name}} for i, e in enumerate(order)]})

    for round_ in range(3):
        first, second = await asyncio.gather(upsert(emails, f"A{round_}"), upsert(emails[::-1], f"B{round_}"))
        assert first.status_code == second.status_code == 200, (first.text[:300], second.text[:300])
        for answer in (first, second):
            assert {r["status"] for r in answer.json()["results"]} <= {"CREATED", "UPDATED", "UNCHANGED"}
    listing = await api.post("/crm/v3/objects/contacts/search", json={
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN",
                                       "value": "*@concurrent.io"}]}], "limit": 1})
    assert listing.json()["total"] == len(emails)

"""The change journal records every write; undoing an operation restores what it changed."""

from __future__ import annotations

import httpx


async def bulk(api: httpx.AsyncClient, operation: str, rows: list[dict], **kw: object) -> dict:
    response = await api.post("/internal/v1/records/contacts/bulk-upsert", json={
        "operation": "UPSERT", "idProperty": "email", "sourceType": "IMPORT", "operationId": operation,
        "rows": [{"ref": i, "properties": r} for i, r in enumerate(rows)], **kw})
    assert response.status_code == 200, response.text
    return response.json()


async def test_undo_restores_overwritten_values_and_deletes_created_records(api: httpx.AsyncClient) -> None:
    kept = (await api.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "keep@example.com", "firstname": "Keep", "city": "Oslo", "lifecyclestage": "lead"}})).json()
    edited_later = (await api.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "later@example.com", "firstname": "Before"}})).json()
    result = await bulk(api, "import:77", [
        {"email": "keep@example.com", "firstname": "Changed", "city": "", "lifecyclestage": "customer"},
        {"email": "later@example.com", "firstname": "Imported"},
        {"email": "brand-new@example.com", "firstname": "New"},
    ])
    new_id = result["results"][2]["id"]

    journal = (await api.get("/internal/v1/operations/import:77/journal")).json()["results"]
    by_record = {e["recordId"]: e for e in journal}
    assert by_record[kept["id"]]["oldValues"] == {"firstname": "Keep", "city": "Oslo", "lifecyclestage": "lead"}
    assert by_record[new_id]["kind"] == "CREATE"

    await api.patch(f"/crm/v3/objects/contacts/{edited_later['id']}", json={"properties": {"firstname": "Manual"}})

    report = (await api.post("/internal/v1/operations/import:77/undo", json={"sourceType": "IMPORT"})).json()
    assert report["deletedRecords"] == [new_id]
    assert report["conflicts"] == [{"recordId": edited_later["id"], "property": "firstname",
                                    "expected": "Imported", "actual": "Manual"}]

    restored = (await api.get(f"/crm/v3/objects/contacts/{kept['id']}",
                              params={"properties": "firstname,city,lifecyclestage"})).json()["properties"]
    assert (restored["firstname"], restored["city"], restored["lifecyclestage"]) == ("Keep", "Oslo", "lead")
    untouched = (await api.get(f"/crm/v3/objects/contacts/{edited_later['id']}")).json()["properties"]
    assert untouched["firstname"] == "Manual"
    assert (await api.get(f"/crm/v3/objects/contacts/{new_id}")).status_code == 404
    # The email of the deleted record is free again, and a second undo does nothing.
    assert (await bulk(api, "import:78", [{"email": "brand-new@example.com"}]))["created"] == 1
    again = (await api.post("/internal/v1/operations/import:77/undo")).json()
    assert again["deletedRecords"] == [] and again["restoredValues"] == 0


async def test_api_writes_are_journaled_per_request_and_history_keeps_sources(api: httpx.AsyncClient) -> None:
    response = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "j@example.com",
                                                                               "firstname": "A"}},
                              headers={"x-request-id": "req-journal-1"})
    record_id = response.json()["id"]
    await bulk(api, "import:90", [{"email": "j@example.com", "firstname": "B"}])
    journal = (await api.get("/internal/v1/operations/request:req-journal-1/journal")).json()["results"]
    assert [(e["kind"], e["recordId"], e["newValues"]["firstname"]) for e in journal] == [("CREATE", record_id, "A")]
    history = (await api.get(f"/crm/v3/objects/contacts/{record_id}",
                             params={"propertiesWithHistory": "firstname"})).json()["propertiesWithHistory"]
    assert [(v["value"], v["sourceType"]) for v in history["firstname"]] == [("B", "IMPORT"), ("A", "API")]


async def test_undo_removes_associations_an_operation_added(api: httpx.AsyncClient) -> None:
    contact = (await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "as@example.com"}})).json()
    company = (await api.post("/crm/v3/objects/companies", json={"properties": {"name": "Assoc"}})).json()
    added = await api.post("/internal/v1/associations/bulk", json={"operationId": "import:91", "inputs": [
        {"fromObjectType": "contacts", "fromId": contact["id"], "toObjectType": "companies", "toId": company["id"]},
        {"fromObjectType": "contacts", "fromId": contact["id"], "toObjectType": "companies", "toId": "999999"}]})
    statuses = [r["status"] for r in added.json()["results"]]
    assert statuses == ["CREATED", "ERROR"]
    url = f"/crm/v4/objects/contacts/{contact['id']}/associations/companies"
    assert len((await api.get(url)).json()["results"]) == 1
    report = (await api.post("/internal/v1/operations/import:91/undo")).json()
    assert report["removedAssociations"] == 2  # both directions
    assert (await api.get(url)).json()["results"] == []


async def test_resolve_finds_records_by_email_and_domain(api: httpx.AsyncClient) -> None:
    contact = (await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "res@example.com"}})).json()
    companies = [(await api.post("/crm/v3/objects/companies", json={"properties": {"name": n, "domain": "shared.io"}})
                  ).json()["id"] for n in ("A", "B")]
    by_email = await api.post("/internal/v1/records/contacts/resolve",
                              json={"property": "email", "values": ["RES@example.com", "none@example.com"]})
    assert by_email.json()["matches"] == {"res@example.com": [contact["id"]]}
    by_domain = await api.post("/internal/v1/records/companies/resolve",
                               json={"property": "domain", "values": ["https://www.shared.io"]})
    assert by_domain.json()["matches"] == {"shared.io": companies}


async def test_bulk_writes_persist_when_no_statement_ran_before_the_copy(api: httpx.AsyncClient) -> None:
    """With a warm property catalog the first statement of a bulk call is the COPY itself; it must still run
    inside the request's transaction (a regression found by import-svc's contract tests)."""
    for name in ("First", "Second", "Third"):
        answer = await api.post("/internal/v1/records/companies/bulk-upsert", json={
            "operation": "UPSERT", "rows": [{"ref": i, "properties": {"name": f"{name} {i}"}} for i in range(300)]})
        assert answer.status_code == 200
        ids = [r["id"] for r in answer.json()["results"]]
        assert all(r["status"] == "CREATED" for r in answer.json()["results"])
        read = await api.post("/crm/v3/objects/companies/batch/read", json={"inputs": [{"id": i} for i in ids[:100]]})
        assert read.status_code == 200 and len(read.json()["results"]) == 100

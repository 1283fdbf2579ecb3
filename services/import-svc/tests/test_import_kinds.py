"""Kinds of import: two linked files, several objects per row with dedupe by domain, label columns."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import all_errors, search_all, start_import, wait_final


async def associated_ids(records: httpx.AsyncClient, from_type: str, record_id: str, to_type: str
                         ) -> dict[str, list[dict[str, Any]]]:
    response = await records.get(f"/crm/v4/objects/{from_type}/{record_id}/associations/{to_type}")
    assert response.status_code == 200, response.text
    return {str(r["toObjectId"]): r["associationTypes"] for r in response.json()["results"]}


async def test_two_files_linked_by_the_contacts_email(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    contacts_csv = (b"Email,First Name\n"
                    b"alice@acme-imports.com,Alice\n"
                    b"bob@acme-imports.com,Bob\n"
                    b"carol@beta-imports.com,Carol\n")
    companies_csv = (b"Domain,Company name,Email\n"
                     b"acme-imports.com,Acme,alice@acme-imports.com\n"
                     b"www.acme-imports.com,Acme Inc,bob@acme-imports.com\n"
                     b"beta-imports.com,Beta,carol@beta-imports.com\n"
                     b"gamma-imports.com,Gamma,nobody@gamma-imports.com\n")
    request = {
        "name": "contacts and companies", "importOperations": {"0-1": "UPSERT", "0-2": "UPSERT"},
        "dateFormat": "YEAR_MONTH_DAY",
        "files": [
            {"fileName": "contacts.csv", "fileFormat": "CSV", "fileImportPage": {"hasHeader": True, "columnMappings": [
                {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email",
                 "associationIdentifierColumn": True},
                {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"}]}},
            {"fileName": "companies.csv", "fileFormat": "CSV", "fileImportPage": {"hasHeader": True, "columnMappings": [
                {"columnObjectTypeId": "0-2", "columnName": "Domain", "propertyName": "domain",
                 "columnType": "HUBSPOT_ALTERNATE_ID"},
                {"columnObjectTypeId": "0-2", "columnName": "Company name", "propertyName": "name"},
                {"columnObjectTypeId": "0-2", "toColumnObjectTypeId": "0-1", "columnName": "Email",
                 "propertyName": None,
                 "foreignKeyType": {"associationTypeId": 280, "associationCategory": "HUBSPOT_DEFINED"}}]}},
        ]}
    # The company file is sent first: the contacts file still runs first, since the other links to it.
    response = await start_import(imports, request, {"companies.csv": companies_csv, "contacts.csv": contacts_csv})
    assert response.status_code == 200, response.text
    assert sorted(response.json()["mappedObjectTypeIds"]) == ["0-1", "0-2"]
    assert len(response.json()["metadata"]["fileIds"]) == 2
    done = await wait_final(imports, response.json()["id"])
    assert done["state"] == "DONE", done

    contacts = {c["properties"]["email"]: c["id"] for c in await search_all(records, "contacts", ["email"])}
    companies = {c["properties"]["domain"]: c for c in await search_all(records, "companies", ["domain", "name"])}
    assert set(contacts) == {"alice@acme-imports.com", "bob@acme-imports.com", "carol@beta-imports.com"}
    assert set(companies) == {"acme-imports.com", "beta-imports.com", "gamma-imports.com"}
    assert companies["acme-imports.com"]["properties"]["name"] == "Acme Inc"  # the later row of one domain wins
    acme = await associated_ids(records, "companies", companies["acme-imports.com"]["id"], "contacts")
    assert set(acme) == {contacts["alice@acme-imports.com"], contacts["bob@acme-imports.com"]}
    assert {t["typeId"] for t in acme[contacts["alice@acme-imports.com"]]} >= {280}
    beta = await associated_ids(records, "companies", companies["beta-imports.com"]["id"], "contacts")
    assert set(beta) == {contacts["carol@beta-imports.com"]}
    assert await associated_ids(records, "companies", companies["gamma-imports.com"]["id"], "contacts") == {}

    errors = await all_errors(imports, done["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"], e["invalidValue"]) for e in errors] == [
        (5, "FAILED_TO_CREATE_ASSOCIATION", "nobody@gamma-imports.com")]
    assert errors[0]["sourceData"]["fileId"] == int(done["metadata"]["fileIds"][1])
    assert done["metadata"]["counters"]["CREATED_ASSOCIATIONS"] == 3


async def test_one_file_several_objects_dedupes_companies_by_domain(imports: httpx.AsyncClient,
                                                                    records: httpx.AsyncClient) -> None:
    lines = ["Email,First name,Company domain,Company name"]
    lines += [f"person{i}@mega-imports.com,P{i},mega-imports.com,Mega Corp" for i in range(10)]
    lines += ["solo1@x-imports.com,Solo1,,Nameless One", "solo2@x-imports.com,Solo2,,Nameless Two"]
    request = {"name": "mixed", "files": [{"fileName": "mixed.csv", "fileImportPage": {"hasHeader": True,
               "columnMappings": [
                   {"columnObjectType": "CONTACT", "columnName": "Email", "propertyName": "email",
                    "idColumnType": "HUBSPOT_ALTERNATE_ID"},
                   {"columnObjectTypeId": "contacts", "columnName": "First name", "propertyName": "firstname"},
                   {"columnObjectTypeId": "0-2", "columnName": "Company domain", "propertyName": "domain"},
                   {"columnObjectTypeId": "0-2", "columnName": "Company name", "propertyName": "name"}]}}]}
    response = await start_import(imports, request, {"mixed.csv": "\n".join(lines).encode()})
    assert response.status_code == 200, response.text
    done = await wait_final(imports, response.json()["id"])
    assert done["state"] == "DONE", done
    assert await all_errors(imports, done["id"]) == []
    companies = await search_all(records, "companies", ["domain", "name"])
    assert sorted((c["properties"].get("domain") or "", c["properties"]["name"]) for c in companies) == [
        ("", "Nameless One"), ("", "Nameless Two"), ("mega-imports.com", "Mega Corp")]
    mega = next(c for c in companies if c["properties"].get("domain") == "mega-imports.com")
    assert len(await associated_ids(records, "companies", mega["id"], "contacts")) == 10
    assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 12 + 3

    # Importing the same file again creates nothing new: every key finds its record.
    again = await start_import(imports, request, {"mixed.csv": "\n".join(lines[:11]).encode()})
    done_again = await wait_final(imports, again.json()["id"])
    assert done_again["metadata"]["counters"].get("CREATED_OBJECTS", 0) == 0
    assert len(await search_all(records, "companies", ["domain"])) == 3
    assert len(await search_all(records, "contacts", ["email"])) == 12


async def test_association_label_column_adds_a_label(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    created = await records.post("/crm/v4/associations/contacts/companies/labels",
                                 json={"label": "Decision maker", "name": "decision_maker"})
    assert created.status_code == 200, created.text
    request = {"name": "labels", "files": [{"fileName": "l.csv", "fileImportPage": {"hasHeader": True,
               "columnMappings": [
                   {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
                   {"columnObjectTypeId": "0-2", "columnName": "Domain", "propertyName": "domain"},
                   {"columnObjectTypeId": "0-1", "toColumnObjectTypeId": "0-2", "columnName": "Role",
                    "columnType": "FLEXIBLE_ASSOCIATION_LABEL"}]}}]}
    content = "Email,Domain,Role\nboss@lab-imports.com,lab-imports.com,Decision maker\nintern@lab-imports.com,lab-imports.com,\n" \
              "x@lab-imports.com,lab-imports.com,Unknown label\n"
    done = await wait_final(imports, (await start_import(imports, request, {"l.csv": content.encode()})).json()["id"])
    assert done["state"] == "DONE"
    contacts = {c["properties"]["email"]: c["id"] for c in await search_all(records, "contacts", ["email"])}
    boss = await associated_ids(records, "contacts", contacts["boss@lab-imports.com"], "companies")
    (types,) = boss.values()
    assert {t.get("label") for t in types} >= {"Decision maker", None}
    intern = await associated_ids(records, "contacts", contacts["intern@lab-imports.com"], "companies")
    assert [t.get("label") for t in next(iter(intern.values()))] == [None]
    errors = await all_errors(imports, done["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [(4, "ASSOCIATION_LABEL_NOT_FOUND")]


async def test_notes_are_created_and_associated_never_updated(imports: httpx.AsyncClient,
                                                              records: httpx.AsyncClient) -> None:
    request = {"name": "notes", "dateFormat": "DAY_MONTH_YEAR", "importOperations": {"0-46": "UPSERT"},
               "files": [{"fileName": "notes.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
                   {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
                   {"columnObjectTypeId": "0-46", "columnName": "Note", "propertyName": "hs_note_body"},
                   {"columnObjectTypeId": "0-46", "columnName": "When", "propertyName": "hs_timestamp"}]}}]}
    content = (b"Email,Note,When\n"
               b"n1@notes-imports.com,Called about renewal,05.03.2024 14:30\n"
               b"n1@notes-imports.com,Sent the quote,06.03.2024 09:00\n"
               b"n2@notes-imports.com,No date given,\n")
    for _ in range(2):  # a second run adds notes again: activities are never matched or updated
        done = await wait_final(imports, (await start_import(imports, request, {"notes.csv": content})).json()["id"])
        assert done["state"] == "DONE", done
    notes = await search_all(records, "notes", ["hs_note_body", "hs_timestamp"])
    assert sorted(n["properties"]["hs_note_body"] for n in notes) == sorted(
        ["Called about renewal", "Sent the quote"] * 2)
    assert {n["properties"]["hs_timestamp"] for n in notes} == {"2024-03-05T14:30:00.000Z", "2024-03-06T09:00:00.000Z"}
    contacts = {c["properties"]["email"]: c["id"] for c in await search_all(records, "contacts", ["email"])}
    linked = await associated_ids(records, "contacts", contacts["n1@notes-imports.com"], "notes")
    assert len(linked) == 4
    errors = await all_errors(imports, done["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [(4, "MISSING_REQUIRED_PROPERTY")]


async def test_record_id_column_updates_by_id(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    first = (await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "byid@id-imports.com", "firstname": "Before"}})).json()
    request = {"name": "by id", "importOperations": {"0-1": "UPDATE"}, "files": [
        {"fileName": "ids.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": "0-1", "columnName": "Record ID", "columnType": "HUBSPOT_OBJECT_ID"},
            {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"}]}}]}
    content = f"Record ID,First Name\n{first['id']},After\n999999999,Ghost\nabc,Letters\n".encode()
    done = await wait_final(imports, (await start_import(imports, request, {"ids.csv": content})).json()["id"])
    assert done["state"] == "DONE"
    assert done["metadata"]["counters"]["UPDATED_OBJECTS"] == 1
    current = (await records.get(f"/crm/v3/objects/contacts/{first['id']}")).json()["properties"]
    assert current["firstname"] == "After"
    errors = await all_errors(imports, done["id"])
    assert sorted((e["sourceData"]["lineNumber"], e["errorType"]) for e in errors) == [
        (3, "UPDATE_ONLY_IMPORT"), (4, "INVALID_OBJECT_ID")]
    assert len(await search_all(records, "contacts", ["email"])) == 1


async def test_unknown_object_type_fails_the_import(imports: httpx.AsyncClient) -> None:
    request = {"name": "nowhere", "files": [{"fileName": "x.csv", "fileImportPage": {"hasHeader": True,
               "columnMappings": [{"columnObjectTypeId": "2-999999", "columnName": "Name", "propertyName": "name"}]}}]}
    done = await wait_final(imports, (await start_import(imports, request, {"x.csv": b"Name\nA\n"})).json()["id"])
    assert done["state"] == "FAILED"
    events = await outbox_types(imports, done["id"])
    assert events[-1] == "import.failed"


async def outbox_types(client: httpx.AsyncClient, import_id: str) -> list[str]:
    import orjson
    from sqlalchemy import text

    async with client.service_app.state.runtime.sessionmaker() as session:  # type: ignore[attr-defined]
        rows = (await session.execute(text("SELECT event_type, body FROM outbox ORDER BY id"))).all()
    return [r[0] for r in rows if orjson.loads(bytes(r[1])).get("data", {}).get("importId") == import_id]

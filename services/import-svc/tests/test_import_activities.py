"""Activities (calls, emails, meetings, notes, tasks): created and associated on every run, never updated."""

from __future__ import annotations

import httpx
import pytest

from .conftest import all_errors, search_all, start_import, wait_final
from .test_import_kinds import associated_ids

# object type, its name in the API, the property the file's "Subject" column goes to
ACTIVITIES = [("0-46", "notes", "hs_note_body"), ("0-48", "calls", "hs_call_title"),
              ("0-49", "emails", "hs_email_subject"), ("0-47", "meetings", "hs_meeting_title"),
              ("0-27", "tasks", "hs_task_subject")]


def activities_request(type_id: str, subject_property: str, operation: str) -> dict[str, object]:
    return {"name": "activities", "dateFormat": "DAY_MONTH_YEAR", "importOperations": {type_id: operation},
            "files": [{"fileName": "activities.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
                {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
                {"columnObjectTypeId": "0-2", "columnName": "Company domain", "propertyName": "domain"},
                {"columnObjectTypeId": type_id, "columnName": "Subject", "propertyName": subject_property},
                {"columnObjectTypeId": type_id, "columnName": "When", "propertyName": "hs_timestamp"}]}}]}


@pytest.mark.parametrize(("type_id", "type_name", "subject_property"), ACTIVITIES)
async def test_activities_for_existing_records_are_created_on_every_run_and_never_updated(
        imports: httpx.AsyncClient, records: httpx.AsyncClient, type_id: str, type_name: str,
        subject_property: str) -> None:
    ann = (await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "ann@acts-imports.com", "firstname": "Ann"}})).json()
    ben = (await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "ben@acts-imports.com", "firstname": "Ben"}})).json()
    acme = (await records.post("/crm/v3/objects/companies", json={"properties": {
        "domain": "acts-imports.com", "name": "Acts"}})).json()
    content = (b"Email,Company domain,Subject,When\n"
               b"ann@acts-imports.com,acts-imports.com,First touch,05.03.2024 14:30\n"
               b"ANN@acts-imports.com,acts-imports.com,Second touch,06.03.2024 09:00\n"
               b"ben@acts-imports.com,,Third touch,07.03.2024 10:15\n")

    # Asking to UPSERT (or UPDATE) activities still only creates them.
    first = await wait_final(imports, (await start_import(
        imports, activities_request(type_id, subject_property, "UPSERT"), {"activities.csv": content})).json()["id"])
    assert first["state"] == "DONE", first
    assert await all_errors(imports, first["id"]) == []
    counters = first["metadata"]["counters"]
    assert (counters["CREATED_OBJECTS"], counters.get("UPDATED_OBJECTS", 0)) == (3, 0)
    # ann-acts, then each activity with its row's contact and (when given) company
    assert counters["CREATED_ASSOCIATIONS"] == 1 + 5
    created = {a["id"]: a for a in await search_all(records, type_name, [subject_property, "hs_timestamp"])}
    assert sorted(a["properties"][subject_property] for a in created.values()) == [
        "First touch", "Second touch", "Third touch"]
    by_subject = {a["properties"][subject_property]: a["id"] for a in created.values()}
    assert set(await associated_ids(records, "contacts", ann["id"], type_name)) == {
        by_subject["First touch"], by_subject["Second touch"]}
    assert set(await associated_ids(records, "contacts", ben["id"], type_name)) == {by_subject["Third touch"]}
    assert set(await associated_ids(records, "companies", acme["id"], type_name)) == {
        by_subject["First touch"], by_subject["Second touch"]}
    # The existing records were found, not duplicated.
    assert {c["id"] for c in await search_all(records, "contacts", ["email"])} == {ann["id"], ben["id"]}
    assert [c["id"] for c in await search_all(records, "companies", ["domain"])] == [acme["id"]]

    second = await wait_final(imports, (await start_import(
        imports, activities_request(type_id, subject_property, "UPDATE"), {"activities.csv": content})).json()["id"])
    assert second["state"] == "DONE", second
    counters = second["metadata"]["counters"]
    assert (counters["CREATED_OBJECTS"], counters.get("UPDATED_OBJECTS", 0)) == (3, 0)
    assert counters["CREATED_ASSOCIATIONS"] == 5
    now = {a["id"]: a for a in await search_all(records, type_name, [subject_property, "hs_timestamp"])}
    assert len(now) == 6
    for activity_id, before in created.items():  # the first run's activities are untouched
        assert (now[activity_id]["properties"], now[activity_id]["updatedAt"]) == (
            before["properties"], before["updatedAt"])
    assert len(await associated_ids(records, "contacts", ann["id"], type_name)) == 4

    # A row naming an existing activity by its record ID is refused, not applied.
    by_id = {"name": "activity by id", "importOperations": {type_id: "UPDATE"}, "files": [
        {"fileName": "ids.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": type_id, "columnName": "ID", "columnType": "HUBSPOT_OBJECT_ID"},
            {"columnObjectTypeId": type_id, "columnName": "Subject", "propertyName": subject_property}]}}]}
    target = by_subject["First touch"]
    third = await wait_final(imports, (await start_import(
        imports, by_id, {"ids.csv": f"ID,Subject\n{target},Rewritten\n".encode()})).json()["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in await all_errors(imports, third["id"])] == [
        (2, "CREATE_ONLY_IMPORT")]
    current = (await records.get(f"/crm/v3/objects/{type_name}/{target}",
                                 params={"properties": subject_property})).json()
    assert current["properties"][subject_property] == "First touch"
    assert len(await search_all(records, type_name, [subject_property])) == 6

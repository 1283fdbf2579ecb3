"""Bulk API 2.0 ingest operations beyond insert, and query jobs, through the in-process app."""

from __future__ import annotations

import csv
import io

from salesforce_emulator.org import Org

from .conftest import SalesforceApi


async def ingest(sf: SalesforceApi, operation: str, csv_text: str, **options: str) -> dict:
    job = (await sf.post("/jobs/ingest", json={"object": "Contact", "operation": operation, **options})).json()
    assert job["state"] == "Open"
    upload = await sf.request("PUT", f"/jobs/ingest/{job['id']}/batches", content=csv_text.encode(),
                              headers={"Content-Type": "text/csv"})
    assert upload.status_code == 201
    closed = (await sf.patch(f"/jobs/ingest/{job['id']}", json={"state": "UploadComplete"})).json()
    assert closed["state"] == "JobComplete"
    return closed


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_upsert_update_null_marker_and_hard_delete(sf: SalesforceApi, org: Org) -> None:
    await sf.admin("POST", "/objects/Contact/fields", json={"name": "Ext__c", "type": "string", "externalId": True})
    first = await ingest(sf, "upsert", "Ext__c,LastName,Title\nE1,One,Boss\nE2,Two,\n", externalIdFieldName="Ext__c")
    assert (first["numberRecordsProcessed"], first["numberRecordsFailed"]) == (2, 0)
    created = read_csv((await sf.get(f"/jobs/ingest/{first['id']}/successfulResults")).text)
    assert [row["sf__Created"] for row in created] == ["true", "true"]
    again = await ingest(sf, "upsert", "Ext__c,Title\nE1,#N/A\n", externalIdFieldName="Ext__c")
    assert read_csv((await sf.get(f"/jobs/ingest/{again['id']}/successfulResults")).text)[0]["sf__Created"] == "false"
    one_id = created[0]["sf__Id"]
    row = (await sf.get(f"/sobjects/Contact/{one_id}")).json()
    assert row["Title"] is None and row["LastName"] == "One"
    update = await ingest(sf, "update", f"Id;LastName\n{one_id};Uno\n", columnDelimiter="SEMICOLON")
    assert update["numberRecordsFailed"] == 0
    assert (await sf.get(f"/sobjects/Contact/{one_id}")).json()["LastName"] == "Uno"
    removed = await ingest(sf, "hardDelete", f"Id\n{one_id}\n003000000000000AAA\n")
    assert (removed["numberRecordsProcessed"], removed["numberRecordsFailed"]) == (2, 1)
    assert (await sf.get(f"/sobjects/Contact/{one_id}")).json()[0]["errorCode"] == "NOT_FOUND"
    deleted_ids = [entry.record_id for entry in org.store.delete_log]
    assert one_id in deleted_ids  # hard-deleted rows still show up in getDeleted


async def test_query_job_pages_with_locator(sf: SalesforceApi) -> None:
    for number in range(3):
        await sf.create("Account", {"Name": f"Bulk {number}", "NumberOfEmployees": number})
    job = (await sf.post("/jobs/query", json={"operation": "query",
                                              "query": "SELECT Name, NumberOfEmployees FROM Account ORDER BY Name"})).json()
    assert (await sf.get(f"/jobs/query/{job['id']}")).json()["state"] == "JobComplete"
    first = await sf.get(f"/jobs/query/{job['id']}/results", params={"maxRecords": 2})
    assert first.headers["Sforce-NumberOfRecords"] == "2" and first.text.startswith('"Name","NumberOfEmployees"\n')
    second = await sf.get(f"/jobs/query/{job['id']}/results",
                          params={"maxRecords": 2, "locator": first.headers["Sforce-Locator"]})
    assert second.headers["Sforce-Locator"] == "null"
    assert read_csv(second.text) == [{"Name": "Bulk 2", "NumberOfEmployees": "2"}]


async def test_bulk_job_errors(sf: SalesforceApi) -> None:
    bad_object = await sf.post("/jobs/ingest", json={"object": "Nope", "operation": "insert"})
    assert bad_object.status_code == 400 and bad_object.json()[0]["errorCode"] == "INVALIDJOB"
    bad_query = await sf.post("/jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Account"})
    assert bad_query.json()[0]["errorCode"] == "INVALID_FIELD"
    assert (await sf.get("/jobs/query/750000000000000AAA")).status_code == 404

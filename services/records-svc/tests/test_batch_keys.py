"""A keyed bulk write answers a second call with the same key exactly as the first, and writes nothing again."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from crm_common.settings import to_plain_url


async def journal_size(api: httpx.AsyncClient, operation_id: str) -> int:
    body = (await api.get(f"/internal/v1/operations/{operation_id}/journal", params={"limit": 10_000})).json()
    return len(body["results"])


async def events_written(database_url: str) -> int:
    """How many outbox rows were ever written (the relay deletes the ones it published)."""
    connection = await asyncpg.connect(to_plain_url(database_url))
    try:
        return int(await connection.fetchval(
            "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('outbox', 'id')), 0)"))
    finally:
        await connection.close()


async def test_the_same_batch_key_gets_the_first_answer_back_and_writes_nothing(
        api: httpx.AsyncClient, records_database: str) -> None:
    existing = await api.post("/crm/v3/objects/contacts", json={"properties": {"email": "old@keys.example",
                                                                               "firstname": "Old"}})
    assert existing.status_code == 201
    body = {"operation": "UPSERT", "idProperty": "email", "operationId": "import:keys",
            "batchKey": "import/1/1/2/0-1/by-key",
            "rows": [{"ref": 2, "properties": {"email": "new@keys.example", "firstname": "New"}},
                     {"ref": 3, "properties": {"email": "old@keys.example", "firstname": "Renamed"}},
                     {"ref": 4, "properties": {"email": "not-an-email"}}]}
    first = await api.post("/internal/v1/records/contacts/bulk-upsert", json=body)
    assert first.status_code == 200, first.text
    assert [r["status"] for r in first.json()["results"]] == ["CREATED", "UPDATED", "ERROR"]
    entries, events = await journal_size(api, "import:keys"), await events_written(records_database)

    again = await api.post("/internal/v1/records/contacts/bulk-upsert", json=body)
    assert again.content == first.content  # not UNCHANGED: what the write did the first time
    assert await journal_size(api, "import:keys") == entries
    assert await events_written(records_database) == events
    # Another key writes as usual (and finds nothing left to change).
    other = await api.post("/internal/v1/records/contacts/bulk-upsert", json={**body, "batchKey": "other"})
    assert [r["status"] for r in other.json()["results"]] == ["UNCHANGED", "UNCHANGED", "ERROR"]


async def test_two_calls_with_one_key_at_once_write_once(api: httpx.AsyncClient, account_id: int) -> None:
    """A retry sent while the first call still runs (its answer timed out) waits for it, then reads its answer."""
    body = {"operation": "CREATE", "batchKey": "import/1/1/2/0-2/new",
            "rows": [{"ref": i, "properties": {"name": f"Keyless {i}"}} for i in range(200)]}
    answers = await asyncio.gather(*(api.post("/internal/v1/records/companies/bulk-upsert", json=body)
                                     for _ in range(4)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    listed = (await api.post("/crm/v3/objects/companies/search", json={"limit": 1})).json()
    assert listed["total"] == 200


async def test_keyed_associations_and_merges_answer_once(api: httpx.AsyncClient, account_id: int) -> None:
    ids = []
    for email in ("a@link.example", "b@link.example"):
        ids.append((await api.post("/crm/v3/objects/contacts", json={"properties": {"email": email}})).json()["id"])
    company = (await api.post("/crm/v3/objects/companies", json={"properties": {"name": "Link"}})).json()["id"]
    body = {"operationId": "import:links", "batchKey": "import/1/1/2/associations/0",
            "inputs": [{"fromObjectType": "0-1", "fromId": i, "toObjectType": "0-2", "toId": company} for i in ids]}
    first = await api.post("/internal/v1/associations/bulk", json=body)
    assert [r["status"] for r in first.json()["results"]] == ["CREATED", "CREATED"]
    again = await api.post("/internal/v1/associations/bulk", json=body)
    assert again.content == first.content  # CREATED again, not EXISTS

    merge = {"mergeId": "m-keys", "objectType": "contacts", "primaryId": ids[0], "secondaryId": ids[1],
             "properties": {"email": "a@link.example"}}
    applied = await api.post("/internal/v1/merges/apply", json=merge)
    assert applied.status_code == 200, applied.text
    # Its answer lost, merge-svc sends it again: the same merge, not "already merged".
    resent = await api.post("/internal/v1/merges/apply", json=merge)
    assert resent.status_code == 200 and resent.json()["id"] == applied.json()["id"]


async def test_rows_keyed_by_company_domain_find_or_create_one_company(api: httpx.AsyncClient,
                                                                      account_id: int) -> None:
    older = (await api.post("/crm/v3/objects/companies", json={"properties": {"domain": "shared.example",
                                                                              "name": "Older"}})).json()["id"]
    await api.post("/crm/v3/objects/companies", json={"properties": {"domain": "shared.example", "name": "Twin"}})
    body = {"operation": "UPSERT", "idProperty": "domain",
            "rows": [{"ref": 1, "properties": {"domain": "https://www.Shared.example/about", "city": "Oslo"}},
                     {"ref": 2, "properties": {"domain": "fresh.example", "name": "Fresh"}},
                     {"ref": 3, "properties": {"domain": "FRESH.example", "city": "Rome"}},
                     {"ref": 4, "properties": {"name": "No domain"}}]}
    answer = (await api.post("/internal/v1/records/companies/bulk-upsert", json=body)).json()["results"]
    assert [(r["status"], r["id"] == older) for r in answer] == [
        ("UPDATED", True), ("CREATED", False), ("CREATED", False), ("CREATED", False)]
    assert answer[1]["id"] == answer[2]["id"] != answer[3]["id"]

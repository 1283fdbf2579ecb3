"""Durable jobs: crash and resume, at most 3 running per account, cancel, list, revert, events."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import orjson
from crm_common.settings import to_plain_url
from crm_common.testing import signed_headers
from import_svc.repository import LIVENESS_LOCKS
from sqlalchemy import text

from .conftest import all_errors, contacts_request, search_all, start_import, wait_final


def contacts_csv(rows: list[tuple[str, str]]) -> bytes:
    return ("Email,First Name\n" + "".join(f"{e},{n}\n" for e, n in rows)).encode()


async def outbox_events(app: Any, import_id: str) -> list[str]:
    async with app.state.runtime.sessionmaker() as session:
        rows = (await session.execute(text("SELECT event_type, body FROM outbox ORDER BY id"))).all()
    return [r[0] for r in rows if orjson.loads(bytes(r[1])).get("data", {}).get("importId") == import_id]


async def test_crash_mid_import_resumes_exactly(import_app_factory: Any, private_database: str, records: httpx.AsyncClient,
                                                account_id: int) -> None:
    # 40 rows in batches of 5, four contacts per company; row 13 repeats row 3's contact and company
    # (an association the first batch made), row 23 row 3's email with a new name and another company,
    # row 30 has a bad email. The crash loses the answer of the third batch (rows 12-16).
    rows = [(f"c{i}@crash-imports.com", f"Name{i}", f"co{i // 4}.crash-imports.com") for i in range(40)]
    rows[11] = ("c1@crash-imports.com", "Name1", "co0.crash-imports.com")
    rows[21] = ("c1@crash-imports.com", "Renamed", "co5.crash-imports.com")
    rows[28] = ("not-an-email", "Bad", "co7.crash-imports.com")
    content = ("Email,First Name,Company domain\n" + "".join(f"{e},{n},{d}\n" for e, n, d in rows)).encode()
    request = {"name": "crash", "files": [{"fileName": "contacts.csv", "fileImportPage": {
        "hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
            {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"},
            {"columnObjectTypeId": "0-2", "columnName": "Company domain", "propertyName": "domain"}]}}]}
    headers = signed_headers(account_id)
    async with import_app_factory(database_url=private_database, worker_batch_size=5, worker_crash_after_batches=3,
                                  worker_lease_seconds=1) as first:
        first.headers.update(headers)
        response = await start_import(first, request, {"contacts.csv": content})
        assert response.status_code == 200, response.text
        import_id = response.json()["id"]
        async with first.service_app.state.runtime.sessionmaker() as session:  # type: ignore[attr-defined]
            worker = first.service_app.state.runtime.resources.worker  # type: ignore[attr-defined]
            for _ in range(1200):  # up to a minute: CI machines can be slow
                if worker._stopping:
                    break
                await asyncio.sleep(0.05)
            # Read only once the worker has "crashed": a read taken before could predate its last checkpoint.
            checkpoint = (await session.execute(text(
                "SELECT rows_done FROM import_checkpoints WHERE import_id = :i"), {"i": int(import_id)})).one()
            await session.rollback()
            status = (await first.get(f"/crm/v3/imports/{import_id}")).json()
        # The third batch reached records-svc but its checkpoint never committed.
        assert checkpoint[0] == 10
        assert status["state"] == "PROCESSING"
        assert len(await search_all(records, "contacts", ["email"])) == 14
        assert len(await search_all(records, "companies", ["domain"])) == 4

    async with import_app_factory(database_url=private_database, worker_batch_size=5) as second:
        second.headers.update(headers)
        done = await wait_final(second, import_id)
        assert done["state"] == "DONE", done
        contacts = {c["properties"]["email"]: c["properties"]["firstname"]
                    for c in await search_all(records, "contacts", ["email", "firstname"])}
        assert len(contacts) == 37
        assert contacts["c1@crash-imports.com"] == "Renamed"
        assert len(await search_all(records, "companies", ["domain"])) == 10
        counters = done["metadata"]["counters"]
        assert counters["CREATED_OBJECTS"] == 37 + 10
        assert counters["UPDATED_OBJECTS"] == 1
        assert counters["ROWS_PROCESSED"] == 40
        # One per good row, less row 13's (made by the first batch): the ones the lost attempt made
        # count once, and the older one re-sent by the replay does not count again.
        assert counters["CREATED_ASSOCIATIONS"] == 39 - 1
        errors = await all_errors(second, import_id)
        assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [(30, "INVALID_EMAIL")]
        events = await outbox_events(second.service_app, import_id)  # type: ignore[attr-defined]
        assert events == ["import.started", "import.completed"]


async def test_at_most_three_imports_run_per_account(import_app_factory: Any, private_database: str, account_id: int) -> None:
    rows = [(f"d{i}@defer-imports.com", f"N{i}") for i in range(30)]
    request = contacts_request([("Email", "email"), ("First Name", "firstname")])
    async with import_app_factory(database_url=private_database, run_worker=False) as paused:
        paused.headers.update(signed_headers(account_id))
        started = [(await start_import(paused, request, {"contacts.csv": contacts_csv(rows)})).json()
                   for _ in range(2)]
        # Three already processing (simulated by leases held by another replica) leave no free slot.
        async with paused.service_app.state.runtime.sessionmaker() as session, session.begin():  # type: ignore[attr-defined]
            await session.execute(text(
                "UPDATE imports SET state = 'PROCESSING', lease_owner = 'elsewhere', "
                "lease_until = now() + interval '1 hour' WHERE account_id = :a"), {"a": account_id})
        extra = (await start_import(paused, request, {"contacts.csv": contacts_csv(rows)})).json()
        assert extra["state"] == "STARTED"
        fourth = (await start_import(paused, request, {"contacts.csv": contacts_csv(rows)})).json()
        assert fourth["state"] == "DEFERRED"
        async with paused.service_app.state.runtime.sessionmaker() as session, session.begin():  # type: ignore[attr-defined]
            await session.execute(text(
                "UPDATE imports SET state = 'PROCESSING', lease_owner = 'elsewhere', "
                "lease_until = now() + interval '1 hour' WHERE id = :i"), {"i": int(extra["id"])})
    # The other replica is alive: it holds its liveness lock, as every running worker does.
    elsewhere = await asyncpg.connect(to_plain_url(private_database))
    await elsewhere.execute("SELECT pg_advisory_lock($1, hashtext('elsewhere'))", LIVENESS_LOCKS)
    async with import_app_factory(database_url=private_database, worker_batch_size=5) as running:
        running.headers.update(signed_headers(account_id))
        await asyncio.sleep(0.5)
        assert (await running.get(f"/crm/v3/imports/{fourth['id']}")).json()["state"] == "DEFERRED"
        # One of the three finishes (its lease is released): the deferred import starts.
        async with running.service_app.state.runtime.sessionmaker() as session, session.begin():  # type: ignore[attr-defined]
            await session.execute(text("UPDATE imports SET state = 'DONE', lease_owner = NULL WHERE id = :i"),
                                  {"i": int(started[0]["id"])})
        done = await wait_final(running, fourth["id"])
        assert done["state"] == "DONE"
        assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 30
        # Cancel the others (still owned by the vanished replica) so they do not linger.
        for item in (started[1], extra):
            answer = await running.post(f"/crm/v3/imports/{item['id']}/cancel")
            assert answer.status_code == 200
            assert answer.json()["status"] == "COMPLETE"
            assert (await running.get(f"/crm/v3/imports/{item['id']}")).json()["state"] == "CANCELED"
    await elsewhere.close()


async def test_cancel_list_and_paging(import_app_factory: Any, private_database: str, account_id: int) -> None:
    request = contacts_request([("Email", "email"), ("First Name", "firstname")], name="to cancel")
    async with import_app_factory(database_url=private_database, run_worker=False) as paused:
        paused.headers.update(signed_headers(account_id))
        ids = [(await start_import(paused, request, {"contacts.csv": contacts_csv([("a@cancel-imports.com", "A")])},
                                   path=path)).json()["id"] for path in ("/crm/v3/imports", "/crm/v3/imports/",
                                                                          "/crm/v3/imports/")]
        cancel = await paused.post(f"/crm/v3/imports/{ids[0]}/cancel")
        assert cancel.status_code == 200
        body = cancel.json()
        assert body["status"] == "COMPLETE" and body["startedAt"] and body["completedAt"]
        status = (await paused.get(f"/crm/v3/imports/{ids[0]}")).json()
        assert status["state"] == "CANCELED"
        assert "import.canceled" in await outbox_events(paused.service_app, ids[0])  # type: ignore[attr-defined]

        first_page = (await paused.get("/crm/v3/imports/", params={"limit": 2})).json()
        assert [r["id"] for r in first_page["results"]] == [ids[2], ids[1]]
        after = first_page["paging"]["next"]["after"]
        second_page = (await paused.get("/crm/v3/imports", params={"limit": 2, "after": after})).json()
        assert [r["id"] for r in second_page["results"]] == [ids[0]]
        assert "paging" not in second_page
        # Another account sees none of them.
        paused.headers.update(signed_headers(account_id + 100_000))
        assert (await paused.get("/crm/v3/imports/")).json()["results"] == []
        assert (await paused.get(f"/crm/v3/imports/{ids[1]}")).status_code == 404
        paused.headers.update(signed_headers(account_id))
        for import_id in ids[1:]:
            await paused.post(f"/crm/v3/imports/{import_id}/cancel")


async def test_revert_restores_overwritten_values_and_deletes_created(imports: httpx.AsyncClient,
                                                                      records: httpx.AsyncClient) -> None:
    existing = await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "old@revert-imports.com", "firstname": "Original", "lastname": "Kept", "city": "Lyon"}})
    assert existing.status_code == 201, existing.text
    existing_id = existing.json()["id"]
    request = contacts_request([("Email", "email"), ("First Name", "firstname"), ("City", "city")],
                               importOperations={"0-1": "UPSERT"})
    content = b"Email,First Name,City\nold@revert-imports.com,Changed,\nnew@revert-imports.com,New,Paris\n"
    done = await wait_final(imports, (await start_import(imports, request, {"c.csv": content})).json()["id"])
    assert done["state"] == "DONE"
    changed = (await records.get(f"/crm/v3/objects/contacts/{existing_id}",
                                 params={"properties": "firstname,lastname,city"})).json()["properties"]
    assert changed["firstname"] == "Changed" and changed["city"] == "Lyon"

    reverted = await imports.post(f"/crm/v3/imports/{done['id']}/revert")
    assert reverted.status_code == 200, reverted.text
    body = reverted.json()
    assert body["state"] == "REVERTED"
    assert body["revert"]["conflicts"] == []
    restored = (await records.get(f"/crm/v3/objects/contacts/{existing_id}",
                                  params={"properties": "firstname,lastname,city"})).json()["properties"]
    assert (restored["firstname"], restored["lastname"], restored["city"]) == ("Original", "Kept", "Lyon")
    emails = {c["properties"]["email"] for c in await search_all(records, "contacts", ["email"])}
    assert emails == {"old@revert-imports.com"}
    assert (await imports.get(f"/crm/v3/imports/{done['id']}")).json()["state"] == "REVERTED"
    assert (await imports.post(f"/crm/v3/imports/{done['id']}/revert")).status_code == 409
    assert "import.reverted" in await outbox_events(imports.service_app, done["id"])  # type: ignore[attr-defined]


async def test_revert_reports_values_changed_since(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    request = contacts_request([("Email", "email"), ("First Name", "firstname")])
    existing = (await records.post("/crm/v3/objects/contacts", json={"properties": {
        "email": "conflict@revert-imports.com", "firstname": "Before"}})).json()
    done = await wait_final(imports, (await start_import(
        imports, request, {"c.csv": b"Email,First Name\nconflict@revert-imports.com,Imported\n"})).json()["id"])
    await records.patch(f"/crm/v3/objects/contacts/{existing['id']}", json={"properties": {"firstname": "Later"}})
    body = (await imports.post(f"/crm/v3/imports/{done['id']}/revert")).json()
    assert body["state"] == "REVERTED"
    assert [(c["recordId"], c["property"]) for c in body["revert"]["conflicts"]] == [(existing["id"], "firstname")]
    current = (await records.get(f"/crm/v3/objects/contacts/{existing['id']}")).json()["properties"]
    assert current["firstname"] == "Later"


class FlakyTransport(httpx.AsyncBaseTransport):
    """records-svc unreachable for bulk writes while `down` is set."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = True
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path.endswith("/bulk-upsert"):
            self.refused += 1
            raise httpx.ConnectError("records-svc is down", request=request)
        return await self.inner.handle_async_request(request)


async def test_records_outage_pauses_the_import_then_it_finishes(imports_database: str, records_app: Any,
                                                                 file_store: Any, private_database: str,
                                                                 records: httpx.AsyncClient, account_id: int) -> None:
    from asgi_lifespan import LifespanManager
    from import_svc.main import create_app
    from import_svc.settings import Settings

    transport = FlakyTransport(httpx.ASGITransport(app=records_app))
    app = create_app(Settings(database_url=private_database, log_json=False, log_level="ERROR",
                              file_store_dir=str(file_store), worker_poll_interval=0.1, records_retries=1,
                              worker_retry_seconds=0.3, run_outbox_relay=False), records_transport=transport)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://imports",
            headers=signed_headers(account_id)) as client:
        rows = [(f"o{i}@outage-imports.com", "N") for i in range(7)]
        import_id = (await start_import(client, contacts_request([("Email", "email"), ("First Name", "firstname")]),
                                        {"c.csv": contacts_csv(rows)})).json()["id"]
        for _ in range(100):
            if transport.refused >= 2:
                break
            await asyncio.sleep(0.05)
        assert transport.refused >= 2  # tried, paused, tried again
        assert (await client.get(f"/crm/v3/imports/{import_id}")).json()["state"] == "PROCESSING"
        transport.down = False
        done = await wait_final(client, import_id)
        assert done["state"] == "DONE"
        assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 7
        assert len(await search_all(records, "contacts", ["email"])) == 7


async def test_crash_during_a_keyless_create_import_creates_nothing_twice(
        import_app_factory: Any, private_database: str, records: httpx.AsyncClient, account_id: int) -> None:
    # Companies without a domain have no key: the creation key written with each finds them again.
    content = ("Company name,City\n" + "".join(f"Nameless {i},City {i}\n" for i in range(12))).encode()
    request = {"name": "keyless", "importOperations": {"0-2": "CREATE"}, "files": [
        {"fileName": "companies.csv", "fileImportPage": {"hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": "0-2", "columnName": "Company name", "propertyName": "name"},
            {"columnObjectTypeId": "0-2", "columnName": "City", "propertyName": "city"}]}}]}
    headers = signed_headers(account_id)
    async with import_app_factory(database_url=private_database, worker_batch_size=4, worker_crash_after_batches=2,
                                  worker_lease_seconds=1) as first:
        first.headers.update(headers)
        import_id = (await start_import(first, request, {"companies.csv": content})).json()["id"]
        worker = first.service_app.state.runtime.resources.worker  # type: ignore[attr-defined]
        for _ in range(1200):  # up to a minute: CI machines can be slow
            if worker._stopping:
                break
            await asyncio.sleep(0.05)
        assert len(await search_all(records, "companies", ["name"])) == 8  # batch 2 written, not checkpointed
    async with import_app_factory(database_url=private_database, worker_batch_size=4) as second:
        second.headers.update(headers)
        done = await wait_final(second, import_id)
    assert done["state"] == "DONE"
    companies = await search_all(records, "companies", ["name", "city"])
    assert sorted(c["properties"]["name"] for c in companies) == sorted(f"Nameless {i}" for i in range(12))
    assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 12


async def test_a_graceful_stop_hands_the_import_over_at_once(import_app_factory: Any, private_database: str,
                                                             records: httpx.AsyncClient, account_id: int) -> None:
    rows = [(f"g{i}@handover-imports.com", "N") for i in range(30)]
    headers = signed_headers(account_id)
    request = contacts_request([("Email", "email"), ("First Name", "firstname")])
    async with import_app_factory(database_url=private_database, worker_batch_size=5,
                                  worker_lease_seconds=3600) as first:
        first.headers.update(headers)
        import_id = (await start_import(first, request, {"c.csv": contacts_csv(rows)})).json()["id"]
        for _ in range(200):
            status = (await first.get(f"/crm/v3/imports/{import_id}")).json()
            if status["state"] == "PROCESSING" and status["metadata"]["counters"].get("ROWS_PROCESSED"):
                break
            await asyncio.sleep(0.02)
    # The first instance stopped mid-import with an hour-long lease; the next one resumes right away.
    async with import_app_factory(database_url=private_database, worker_batch_size=5) as second:
        second.headers.update(headers)
        done = await wait_final(second, import_id, timeout=30)
    assert done["state"] == "DONE"
    assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 30
    assert len(await search_all(records, "contacts", ["email"])) == 30

"""An import killed at any stage of a batch ends with exactly the records and counters of an uninterrupted one.

The worker dies (its tasks stop, its liveness lock goes, its lease stays as a killed process leaves it)
before a batch's records calls, after records-svc committed them but before the checkpoint, or right
after the checkpoint. Its lease is an hour long: the next instance must take the import over at once
because its owner is gone, not because the lease ran out.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from crm_common.testing import signed_headers

from .conftest import all_errors, search_all, start_import, wait_final

ROWS = 40
BATCH = 5


def crash_file() -> bytes:
    # Four contacts per company; row 13 repeats row 3's contact and company (an association the first
    # batch made), row 23 renames row 3's contact and moves it to another company, row 30 has a bad email,
    # and every row creates a keyless deal (no key could find it again).
    rows = [(f"c{i}@stage-imports.com", f"Name{i}", f"co{i // 4}.stage-imports.com") for i in range(ROWS)]
    rows[11] = ("c1@stage-imports.com", "Name1", "co0.stage-imports.com")
    rows[21] = ("c1@stage-imports.com", "Renamed", "co5.stage-imports.com")
    rows[28] = ("not-an-email", "Bad", "co7.stage-imports.com")
    return ("Email,First Name,Company domain,Deal,Pipeline,Stage\n"
            + "".join(f"{e},{n},{d},Deal {i},default,appointmentscheduled\n"
                      for i, (e, n, d) in enumerate(rows))).encode()


REQUEST = {"name": "stages", "files": [{"fileName": "contacts.csv", "fileImportPage": {
    "hasHeader": True, "columnMappings": [
        {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
        {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"},
        {"columnObjectTypeId": "0-2", "columnName": "Company domain", "propertyName": "domain"},
        {"columnObjectTypeId": "0-3", "columnName": "Deal", "propertyName": "dealname"},
        {"columnObjectTypeId": "0-3", "columnName": "Pipeline", "propertyName": "pipeline"},
        {"columnObjectTypeId": "0-3", "columnName": "Stage", "propertyName": "dealstage"}]}}]}


@pytest.mark.parametrize("stage", ["before_call", "after_call", "after_checkpoint"])
async def test_a_worker_killed_at_any_stage_of_a_batch_changes_nothing(
        stage: str, import_app_factory: Any, private_database: str, records: httpx.AsyncClient,
        account_id: int) -> None:
    headers = signed_headers(account_id)
    async with import_app_factory(database_url=private_database, worker_batch_size=BATCH,
                                  worker_crash_after_batches=3, worker_crash_stage=stage,
                                  worker_lease_seconds=3600) as first:
        first.headers.update(headers)
        import_id = (await start_import(first, REQUEST, {"contacts.csv": crash_file()})).json()["id"]
        worker = first.service_app.state.runtime.resources.worker  # type: ignore[attr-defined]
        for _ in range(1200):  # up to a minute: CI machines can be slow
            if worker._crashed:
                break
            await asyncio.sleep(0.05)
        assert worker._crashed
        status = (await first.get(f"/crm/v3/imports/{import_id}")).json()
        assert status["state"] == "PROCESSING"
        written = len(await search_all(records, "deals", ["dealname"]))
        assert written == {"before_call": 10, "after_call": 15, "after_checkpoint": 15}[stage]

    async with import_app_factory(database_url=private_database, worker_batch_size=BATCH) as second:
        second.headers.update(headers)
        done = await wait_final(second, import_id, timeout=60)  # far less than the hour-long lease
        errors = await all_errors(second, import_id)
    assert done["state"] == "DONE", done
    contacts = {c["properties"]["email"]: c["properties"]["firstname"]
                for c in await search_all(records, "contacts", ["email", "firstname"])}
    assert len(contacts) == 37 and contacts["c1@stage-imports.com"] == "Renamed"
    assert len(await search_all(records, "companies", ["domain"])) == 10
    assert sorted(d["properties"]["dealname"] for d in await search_all(records, "deals", ["dealname"])) == \
        sorted(f"Deal {i}" for i in range(ROWS))
    counters = done["metadata"]["counters"]
    assert counters["CREATED_OBJECTS"] == 37 + 10 + ROWS
    assert counters["UPDATED_OBJECTS"] == 1
    assert counters["ROWS_PROCESSED"] == ROWS
    # contact-company, contact-deal and company-deal per row; row 13 repeats row 3's contact-company pair,
    # and row 30 has no contact.
    assert counters["CREATED_ASSOCIATIONS"] == (ROWS - 1) * 3 - 1 + 1
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [(30, "INVALID_EMAIL")]

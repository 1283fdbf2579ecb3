"""A large batch goes to records-svc as parallel calls split by key, with the same result as one call."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import orjson
from asgi_lifespan import LifespanManager
from crm_common.testing import signed_headers
from import_svc.main import create_app
from import_svc.settings import Settings

from .conftest import contacts_request, search_all, start_import, wait_final


class CountingTransport(httpx.AsyncBaseTransport):
    """Records the row count of every bulk-upsert call and how many ran at the same time."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.running = 0
        self.most_at_once = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/bulk-upsert"):
            return await self.inner.handle_async_request(request)
        self.calls.append(len(orjson.loads(request.content)["rows"]))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.running -= 1


def messy_file(rows: int, distinct: int) -> bytes:
    """Each email repeats, in other letter cases and with spaces; the last row of an email names it."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "First Name"])
    for i in range(rows):
        email = f"person{i % distinct}@parallel-imports.com"
        if i >= distinct:
            email = f" {email.upper()} " if i % 2 else email.title()
        writer.writerow([email, f"row{i}"])
    return out.getvalue().encode()


async def test_a_large_batch_split_by_key_writes_each_record_once_with_its_last_row(
        records_app: Any, file_store: Any, private_database: str, records: httpx.AsyncClient,
        account_id: int) -> None:
    rows, distinct = 4_800, 2_999  # odd: an email's rows alternate between even and odd lines
    transport = CountingTransport(httpx.ASGITransport(app=records_app))
    app = create_app(Settings(database_url=private_database, log_json=False, log_level="WARNING",
                              file_store_dir=str(file_store), worker_poll_interval=0.1, run_outbox_relay=False,
                              worker_batch_size=10_000, records_parallel_calls=2), records_transport=transport)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://imports",
            headers=signed_headers(account_id), timeout=120) as client:
        request = contacts_request([("Email", "email"), ("First Name", "firstname")])
        done = await wait_final(client, (await start_import(client, request, {"c.csv": messy_file(rows, distinct)})
                                         ).json()["id"])
        assert done["state"] == "DONE", done
        counters = done["metadata"]["counters"]
        assert (counters["CREATED_OBJECTS"], counters.get("UPDATED_OBJECTS", 0), counters.get("ERRORS", 0)) == \
            (distinct, 0, 0)
        assert len(transport.calls) == 2 and sum(transport.calls) == rows and transport.most_at_once == 2

        stored = {c["properties"]["email"]: c["properties"]["firstname"]
                  for c in await search_all(records, "contacts", ["email", "firstname"])}
        last_row = {f"person{i % distinct}@parallel-imports.com": f"row{i}" for i in range(rows)}
        assert stored == last_row

        # The same file again: every record found by its key in whichever part it falls, none created.
        again = await wait_final(client, (await start_import(client, request, {"c.csv": messy_file(rows, distinct)})
                                          ).json()["id"])
        assert again["metadata"]["counters"]["CREATED_OBJECTS"] == 0
        assert again["metadata"]["counters"]["UNCHANGED_OBJECTS"] == distinct

"""A bad cell is its row's error: the import goes on, the good rows of its batch are written, no SQL leaks."""

from __future__ import annotations

from typing import Any

import httpx

from .conftest import all_errors, contacts_request, search_all, start_import, wait_final


async def test_a_nul_byte_in_a_cell_is_that_cells_error(imports: httpx.AsyncClient, records: httpx.AsyncClient) -> None:
    content = (b"Email,First\nnul@cells.example,a\x00b\ngood@cells.example,Good\n"
               b"nul-key\x00@cells.example,Keyed\nsurrogate@cells.example,ok\n")
    started = await start_import(imports, contacts_request([("Email", "email"), ("First", "firstname")]),
                                 {"c.csv": content})
    assert started.status_code == 200, started.text
    done = await wait_final(imports, started.json()["id"], timeout=60)
    assert done["state"] == "DONE", done
    contacts = {c["properties"]["email"]: c["properties"].get("firstname")
                for c in await search_all(records, "contacts", ["email", "firstname"])}
    # The row with a NUL in its name is written without the name; the one with a NUL in its email is not.
    assert contacts == {"nul@cells.example": None, "good@cells.example": "Good", "surrogate@cells.example": "ok"}
    errors = await all_errors(imports, started.json()["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [
        (2, "FAILED_VALIDATION"), (4, "FAILED_VALIDATION")]
    assert "NUL" in errors[0]["errorMessage"] and errors[0]["invalidValue"] == "a\\u0000b"
    assert done["metadata"]["counters"]["CREATED_OBJECTS"] == 3


async def test_a_record_id_that_is_not_a_bigint_is_its_rows_error(imports: httpx.AsyncClient,
                                                                 records: httpx.AsyncClient) -> None:
    known = (await records.post("/crm/v3/objects/contacts", json={"properties": {"email": "id@cells.example"}})).json()
    content = (f"Record ID,First\n\u00b2,Super\n99999999999999999999999,Huge\n{known['id']},Known\n"
               "9223372036854775808,Over\n").encode()
    started = await start_import(imports, contacts_request([("Record ID", "hs_object_id"), ("First", "firstname")],
                                                           importOperations={"0-1": "UPDATE"}), {"c.csv": content})
    done = await wait_final(imports, started.json()["id"], timeout=60)
    assert done["state"] == "DONE", done
    assert "INSERT" not in (done.get("failureReason") or "")
    errors = await all_errors(imports, started.json()["id"])
    assert [(e["sourceData"]["lineNumber"], e["errorType"]) for e in errors] == [
        (2, "INVALID_OBJECT_ID"), (3, "INVALID_OBJECT_ID"), (5, "INVALID_OBJECT_ID")]
    read = (await records.get(f"/crm/v3/objects/contacts/{known['id']}", params={"properties": "firstname"})).json()
    assert read["properties"]["firstname"] == "Known"


async def test_a_batch_records_svc_keeps_failing_on_fails_the_import_with_a_reason(
        import_app_factory: Any, private_database: str, records_app: Any, account_id: int) -> None:
    """An internal error on a batch is retried a few times, then the import ends FAILED (never PROCESSING forever)."""
    from crm_common.testing import signed_headers

    inner = httpx.ASGITransport(app=records_app)

    class FailingBulk(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/bulk-upsert"):
                return httpx.Response(500, json={"status": "error", "message": "internal error",
                                                 "category": "INTERNAL_ERROR", "correlationId": "x"})
            return await inner.handle_async_request(request)

    from asgi_lifespan import LifespanManager
    from import_svc.main import create_app
    from import_svc.settings import Settings

    app = create_app(Settings(database_url=private_database, log_json=False, log_level="ERROR",
                              worker_poll_interval=0.05, worker_retry_seconds=0.05, records_retries=1,
                              worker_max_failed_attempts=3, run_outbox_relay=False), records_transport=FailingBulk())
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://imports",
            headers=signed_headers(account_id)) as client:
        started = await start_import(client, contacts_request([("Email", "email")]),
                                     {"c.csv": b"Email\nfails@cells.example\n"})
        done = await wait_final(client, started.json()["id"], timeout=60)
    assert done["state"] == "FAILED"
    assert "records-svc failed 3 times" in done["failureReason"] and "internal error" in done["failureReason"]

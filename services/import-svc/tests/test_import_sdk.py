"""The official SDK (hubspot-api-client 12, strict client-side validation) drives an import over real HTTP.

import-svc runs under uvicorn on a free port in this event loop (records-svc in-process behind it);
the SDK is synchronous, so its calls run in a thread. The gateway is not in the path: the signed
internal auth header it would add is set as a default header on the SDK's API clients.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from crm_common.testing import signed_headers
from import_svc.main import create_app
from import_svc.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served_import_svc(imports_database: str, records_app: Any, file_store: Path) -> Any:
    port = free_port()
    settings = Settings(database_url=imports_database, log_json=False, log_level="WARNING",
                        file_store_dir=str(file_store), worker_poll_interval=0.1, run_outbox_relay=False)
    app = create_app(settings, records_transport=httpx.ASGITransport(app=records_app))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_sdk_starts_polls_lists_and_reads_errors(served_import_svc: str, account_id: int,
                                                       tmp_path: Path, records: httpx.AsyncClient) -> None:
    from hubspot import HubSpot

    client = HubSpot(access_token="unused-behind-gateway", host=served_import_svc, client_side_validation=True)
    core = client.crm.imports.core_api
    public = client.crm.imports.public_imports_api
    for api in (core, public):
        for name, value in signed_headers(account_id).items():
            api.api_client.set_default_header(name, value)

    path = tmp_path / "sdk-contacts.csv"
    path.write_text("Email,First Name,Score\nsdk1@sdk-imports.com,Ada,1\nsdk2@sdk-imports.com,Bea,2\n"
                    "broken-email,Cy,3\n", encoding="utf-8")
    request = {"name": "SDK import", "importOperations": {"0-1": "UPSERT"}, "files": [
        {"fileName": "sdk-contacts.csv", "fileFormat": "CSV", "fileImportPage": {"hasHeader": True, "columnMappings": [
            {"columnObjectTypeId": "0-1", "columnName": "Email", "propertyName": "email"},
            {"columnObjectTypeId": "0-1", "columnName": "First Name", "propertyName": "firstname"},
            {"columnName": "Score", "ignored": True}]}}]}

    started = await asyncio.to_thread(core.create, files=str(path), import_request=json.dumps(request))
    assert started is not None and started.id
    assert started.state in ("STARTED", "PROCESSING")
    assert started.metadata.counters["TOTAL_ROWS"] == 3

    status = started
    for _ in range(300):
        status = await asyncio.to_thread(core.get_by_id, started.id)
        if status.state == "DONE":
            break
        await asyncio.sleep(0.1)
    assert status.state == "DONE"
    assert status.import_name == "SDK import"
    assert status.metadata.counters["CREATED_OBJECTS"] == 2
    assert status.mapped_object_type_ids == ["0-1"]

    page = await asyncio.to_thread(core.get_page, limit=10)
    assert started.id in [r.id for r in page.results]

    errors = await asyncio.to_thread(public.get_errors, started.id, include_error_message=True,
                                     include_row_data=True)
    assert len(errors.results) == 1
    error = errors.results[0]
    assert error.error_type == "INVALID_EMAIL"
    assert error.source_data.line_number == 4
    assert error.source_data.row_data == ["broken-email", "Cy", "3"]
    assert isinstance(error.created_at, int)

    second = await asyncio.to_thread(core.create, files=str(path), import_request=json.dumps(request))
    cancelled = await asyncio.to_thread(core.cancel, second.id)
    assert cancelled.status == "COMPLETE"

    emails = (await records.get("/crm/v3/objects/contacts", params={"properties": "email"})).json()["results"]
    assert {c["properties"]["email"] for c in emails} == {"sdk1@sdk-imports.com", "sdk2@sdk-imports.com"}

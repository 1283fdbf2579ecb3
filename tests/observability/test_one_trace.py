"""One trace follows an import from the gateway through import-svc and records-svc to the events it publishes.

The gateway, import-svc and records-svc run as real HTTP servers (uvicorn) in this process, so one in-memory
span exporter sees every span; they talk over loopback HTTP as deployed, with real Postgres and RabbitMQ.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from corral_gateway.main import create_app as create_gateway
from corral_gateway.scopes import ALL_SCOPES
from corral_gateway.settings import GATEWAY_DIR, GatewaySettings
from corral_gateway.tokens import create_token
from crm_common.db import make_engine
from crm_common.testing import TEST_QUEUE_EXPIRES_MS, migrated_database, recording_spans, unique_exchange
from import_svc.main import create_app as create_imports
from import_svc.settings import Settings as ImportSettings
from opentelemetry.trace import SpanKind
from records_svc.main import create_app as create_records
from records_svc.settings import Settings as RecordsSettings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def port_of(span: Any) -> int | None:
    value = span.attributes.get("server.port") or span.attributes.get("net.host.port")
    return int(value) if value is not None else None


async def test_one_trace_from_the_gateway_through_import_and_records_to_the_published_events(
    tmp_path: Path,
) -> None:
    exchange = unique_exchange()
    ports = {name: free_port() for name in ("gateway", "imports", "records")}
    async with (
        migrated_database(ROOT / "services" / "records-svc", "corral_trace_records") as records_db,
        migrated_database(ROOT / "services" / "import-svc", "corral_trace_imports") as imports_db,
        migrated_database(GATEWAY_DIR, "corral_trace_gateway") as gateway_db,
    ):
        engine = make_engine(gateway_db, pool_size=1)
        token, _ = await create_token(engine, account="trace", scopes=list(ALL_SCOPES))
        await engine.dispose()
        common = {
            "exchange": exchange,
            "queue_expires_ms": TEST_QUEUE_EXPIRES_MS,
            "log_json": False,
            "log_level": "WARNING",
        }
        with recording_spans() as exporter:
            records = create_records(
                RecordsSettings(database_url=records_db, port=ports["records"], **common)
            )
            imports = create_imports(
                ImportSettings(
                    database_url=imports_db,
                    port=ports["imports"],
                    records_url=f"http://127.0.0.1:{ports['records']}",
                    file_store_dir=str(tmp_path),
                    worker_poll_interval=0.1,
                    **common,
                )
            )
            gateway = create_gateway(
                GatewaySettings(
                    database_url=gateway_db,
                    port=ports["gateway"],
                    metrics_port=0,
                    records_url=f"http://127.0.0.1:{ports['records']}",
                    imports_url=f"http://127.0.0.1:{ports['imports']}",
                    **common,
                )
            )
            async with (
                serving(records, ports["records"]),
                serving(imports, ports["imports"]),
                serving(gateway, ports["gateway"]),
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{ports['gateway']}",
                    timeout=60,
                    headers={"Authorization": f"Bearer {token}"},
                ) as client,
            ):
                request = {
                    "name": "traced",
                    "files": [
                        {
                            "fileName": "people.csv",
                            "fileFormat": "CSV",
                            "fileImportPage": {
                                "hasHeader": True,
                                "columnMappings": [
                                    {
                                        "columnName": "Email",
                                        "propertyName": "email",
                                        "columnObjectTypeId": "0-1",
                                    },
                                    {
                                        "columnName": "First",
                                        "propertyName": "firstname",
                                        "columnObjectTypeId": "0-1",
                                    },
                                ],
                            },
                        }
                    ],
                }
                csv = b"Email,First\nada@example.com,Ada\ngrace@example.com,Grace\nlinus@example.com,Linus\n"
                started = await client.post(
                    "/crm/v3/imports",
                    data={"importRequest": orjson.dumps(request).decode()},
                    files=[("files", ("people.csv", csv, "text/csv"))],
                )
                assert started.status_code == 200, started.text
                import_id = started.json()["id"]
                for _ in range(300):
                    status = (await client.get(f"/crm/v3/imports/{import_id}")).json()
                    if status["state"] == "DONE":
                        break
                    await asyncio.sleep(0.1)
                assert status["state"] == "DONE", status
                assert status["metadata"]["counters"]["CREATED_OBJECTS"] == 3

                def published() -> set[str]:
                    return {s.name for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER}

                for _ in range(100):
                    if {"publish record.created", "publish import.completed"} <= published():
                        break
                    await asyncio.sleep(0.1)

    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    (start,) = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER and port_of(s) == ports["gateway"] and s.name == "POST /crm/v3/imports"
    ]
    trace = [s for s in spans if s.context.trace_id == start.context.trace_id]

    def chain(span: Any) -> list[str]:
        names = []
        while span is not None:
            names.append(f"{span.name}@{port_of(span) or '-'}")
            span = by_id.get(span.parent.span_id) if span.parent else None
        return names

    def one(predicate: Any, what: str) -> Any:
        found = [s for s in trace if predicate(s)]
        assert found, f"no {what} in the trace: {sorted(chain(s)[0] for s in trace)}"
        return found[0]

    # gateway -> import-svc: the start request
    imports_start = one(
        lambda s: (
            s.kind == SpanKind.SERVER
            and port_of(s) == ports["imports"]
            and s.name.startswith("POST /crm/v3/imports")
        ),
        "import-svc server span",
    )
    # import-svc's worker, later and elsewhere, continues the trace and calls records-svc
    batch = one(lambda s: s.name == "import batch", "import batch span")
    records_write = one(
        lambda s: (
            s.kind == SpanKind.SERVER
            and port_of(s) == ports["records"]
            and by_id.get(s.parent.span_id) is not None
            and chain(s)[2:].count("import batch@-") == 1
        ),
        "records-svc server span under a batch",
    )
    # records-svc's outbox relay publishes the records' events in the same trace, and so does import-svc's
    created = one(lambda s: s.name == "publish record.created", "record.created publish span")
    completed = one(lambda s: s.name == "publish import.completed", "import.completed publish span")
    one(lambda s: s.attributes.get("db.system") == "postgresql", "Postgres statement")

    gateway_step = f"POST /crm/v3/imports@{ports['gateway']}"
    assert gateway_step in chain(imports_start), chain(imports_start)
    assert gateway_step in chain(batch), chain(batch)
    assert gateway_step in chain(records_write), chain(records_write)
    # The whole path, newest first: publish <- records-svc bulk write <- httpx <- batch <- import job <-
    # import-svc start request <- gateway's forward <- gateway request <- the client.
    assert [step.split("@")[0] for step in chain(created)][:6] == [
        "publish record.created",
        "POST /internal/v1/records/{objectType}/bulk-upsert",
        "POST",
        "import batch",
        "import",
        "POST /crm/v3/imports",
    ]
    # The created events were written by the records-svc request the batch made.
    assert any(step.endswith(f"@{ports['records']}") for step in chain(created)), chain(created)
    assert "import batch@-" in chain(created)
    assert "import@-" in chain(completed)
    assert created.attributes["messaging.destination.name"] == exchange

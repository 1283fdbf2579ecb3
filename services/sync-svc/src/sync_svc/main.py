"""Corral Salesforce sync service: application factory and entry points."""

from __future__ import annotations

from pathlib import Path

import httpx
import structlog
from crm_common import cli
from crm_common.app import ServiceRuntime, create_service_app
from crm_common.contracts.records import RecordsClient
from crm_common.http import ServiceClient
from fastapi import FastAPI

from sync_svc.api import connection, control, internal, objects
from sync_svc.api.deps import SyncResources
from sync_svc.connector import Connector
from sync_svc.crypto import SecretBox
from sync_svc.engine.changes import SUBSCRIPTIONS
from sync_svc.engine.cycle import SyncEngine
from sync_svc.metrics import STATE_METRICS
from sync_svc.records import SyncRecords
from sync_svc.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[2]
log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None, *, records_transport: httpx.AsyncBaseTransport | None = None,
               salesforce_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """`records_transport` / `salesforce_transport` let tests run records-svc and the Salesforce emulator
    in-process (httpx.ASGITransport)."""
    settings = settings or Settings()

    async def start(runtime: ServiceRuntime[SyncResources]) -> None:
        box = SecretBox.from_settings(settings.encryption_key, settings.encryption_key_file)
        if box is None:
            log.warning("no encryption key configured: Salesforce connections are refused until "
                        "SYNC_SVC_ENCRYPTION_KEY is set")
        http = httpx.AsyncClient(transport=salesforce_transport, follow_redirects=False,
                                 timeout=httpx.Timeout(settings.salesforce_timeout_seconds, connect=5.0),
                                 limits=httpx.Limits(max_connections=50, max_keepalive_connections=10))
        records = RecordsClient(ServiceClient(base_url=settings.records_url, secret=settings.internal_secret,
                                              caller=settings.service_name, transport=records_transport,
                                              timeout=300.0))
        connector = Connector(settings=settings, sessionmaker=runtime.sessionmaker, box=box, http=http)
        engine = SyncEngine(settings=settings, engine=runtime.engine, sessionmaker=runtime.sessionmaker,
                            connector=connector, records=SyncRecords(records))
        runtime.resources = SyncResources(connector=connector, records=records, engine=engine)
        if settings.run_worker:
            engine.start()

    async def stop(runtime: ServiceRuntime[SyncResources]) -> None:
        resources, runtime.resources = runtime.resources, None
        if resources is None:
            return
        await resources.engine.stop()
        await resources.connector.http.aclose()
        await resources.records.aclose()

    return create_service_app(
        settings=settings,
        title="Corral Salesforce sync service",
        description="Two-way Salesforce sync: connections, object and field mappings, sync rules, the sync engine "
                    "and its errors.",
        routers=[connection.router, objects.router, control.router, internal.router],
        subscriptions=SUBSCRIPTIONS,
        on_startup=[start],
        on_shutdown=[stop],
        state_metrics=STATE_METRICS,
    )


def run() -> None:
    cli.serve(create_app, Settings())


def migrate() -> None:
    cli.migrate(SERVICE_DIR, Settings())

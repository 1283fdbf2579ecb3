"""Corral import service: application factory and entry points."""

from __future__ import annotations

from pathlib import Path

import httpx
from crm_common import cli
from crm_common.app import ServiceRuntime, create_service_app
from crm_common.contracts.merges import MergesClient
from crm_common.contracts.records import RecordsClient
from crm_common.http import ServiceClient
from fastapi import FastAPI

from import_svc.api import capture, imports, preview
from import_svc.metrics import STATE_METRICS
from import_svc.settings import Settings
from import_svc.worker import ImportWorker

SERVICE_DIR = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None, *, records_transport: httpx.AsyncBaseTransport | None = None,
               merge_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """`records_transport`/`merge_transport` let tests run those services in-process (httpx.ASGITransport)."""
    settings = settings or Settings()

    async def start(runtime: ServiceRuntime) -> None:
        client = ServiceClient(base_url=settings.records_url, secret=settings.internal_secret,
                               caller=settings.service_name, timeout=settings.records_timeout,
                               transport=records_transport)
        runtime.extras["records_http"] = client
        runtime.extras["records"] = RecordsClient(client, retries=settings.records_retries,
                                                  parallel_calls=settings.records_parallel_calls)
        runtime.extras["merges"] = MergesClient(ServiceClient(
            base_url=settings.merge_url, secret=settings.internal_secret, caller=settings.service_name,
            timeout=10.0, transport=merge_transport), retries=2)
        Path(settings.file_store_dir).mkdir(parents=True, exist_ok=True)
        if settings.run_worker:
            worker = ImportWorker(runtime, runtime.extras["records"], settings)
            runtime.extras["worker"] = worker
            worker.start()

    async def stop(runtime: ServiceRuntime) -> None:
        worker = runtime.extras.get("worker")
        if worker is not None:
            await worker.stop()
        for name in ("records_http", "merges"):
            client = runtime.extras.get(name)
            if client is not None:
                await client.aclose()

    return create_service_app(
        settings=settings,
        title="Corral import service",
        description="Imports of CSV/XLSX files and mobile capture (HubSpot imports API compatible).",
        routers=[imports.router, imports.corral_router, preview.router, capture.router],
        on_startup=[start],
        on_shutdown=[stop],
        state_metrics=STATE_METRICS,
    )


def run() -> None:
    cli.serve(create_app, Settings())


def migrate() -> None:
    cli.migrate(SERVICE_DIR, Settings())

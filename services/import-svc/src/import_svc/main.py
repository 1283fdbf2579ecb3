"""Corral import service: application factory and entry points."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from crm_common import cli
from crm_common.app import ServiceRuntime, create_service_app
from crm_common.contracts.merges import MergesClient
from crm_common.contracts.records import RecordsClient
from crm_common.http import ServiceClient
from fastapi import FastAPI

from import_svc.api import capture, imports, preview
from import_svc.api.deps import ImportResources
from import_svc.metrics import STATE_METRICS
from import_svc.settings import Settings
from import_svc.worker import ImportWorker

SERVICE_DIR = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None, *, records_transport: httpx.AsyncBaseTransport | None = None,
               merge_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """`records_transport`/`merge_transport` let tests run those services in-process (httpx.ASGITransport)."""
    settings = settings or Settings()

    async def start(runtime: ServiceRuntime[ImportResources]) -> None:
        client = ServiceClient(base_url=settings.records_url, secret=settings.internal_secret,
                               caller=settings.service_name, timeout=settings.records_timeout,
                               transport=records_transport)
        resources = ImportResources(
            records=RecordsClient(client, retries=settings.records_retries,
                                  parallel_calls=settings.records_parallel_calls),
            merges=MergesClient(ServiceClient(
                base_url=settings.merge_url, secret=settings.internal_secret, caller=settings.service_name,
                timeout=10.0, transport=merge_transport), retries=2),
            ocr_slots=asyncio.Semaphore(max(1, settings.ocr_at_once)))
        runtime.resources = resources
        Path(settings.file_store_dir).mkdir(parents=True, exist_ok=True)
        if settings.run_worker:
            resources.worker = ImportWorker(runtime, resources.records, settings)
            resources.worker.start()

    async def stop(runtime: ServiceRuntime[ImportResources]) -> None:
        resources = runtime.resources
        if resources is None:
            return
        if resources.worker is not None:
            await resources.worker.stop()
        for client in (resources.records, resources.merges):
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

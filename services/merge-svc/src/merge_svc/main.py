"""Corral merge service: application factory and entry points."""

from __future__ import annotations

from pathlib import Path

from crm_common import cli
from crm_common.app import ServiceRuntime, create_service_app
from crm_common.contracts.records import RecordsClient
from crm_common.contracts.sync import SyncClient
from crm_common.http import ServiceClient
from fastapi import FastAPI

from merge_svc.api import duplicates, merges
from merge_svc.api.deps import MergeResources
from merge_svc.duplicates import events as duplicate_events
from merge_svc.duplicates.scans import ScanWorker
from merge_svc.metrics import STATE_METRICS
from merge_svc.reconcile import PendingMergeReconciler
from merge_svc.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None, *, records_transport=None, sync_transport=None) -> FastAPI:
    """`records_transport`/`sync_transport` let tests run those services in-process (httpx.ASGITransport)."""
    settings = settings or Settings()
    clients: dict[str, RecordsClient] = {}

    async def start_clients(runtime: ServiceRuntime[MergeResources]) -> None:
        resources = MergeResources(
            records=RecordsClient(ServiceClient(
                base_url=settings.records_url, secret=settings.internal_secret, caller=settings.service_name,
                transport=records_transport), retries=settings.records_retries),
            sync=SyncClient(ServiceClient(
                base_url=settings.sync_url, secret=settings.internal_secret, caller=settings.service_name,
                timeout=10.0, transport=sync_transport), retries=2))
        runtime.resources = resources
        clients["records"] = resources.records
        if settings.reconcile_interval_seconds > 0:
            resources.reconciler = PendingMergeReconciler(
                sessionmaker=runtime.sessionmaker, records=resources.records,
                interval=settings.reconcile_interval_seconds, grace=settings.reconcile_grace_seconds)
            resources.reconciler.start()
        if settings.run_scans:
            resources.scans = ScanWorker(sessionmaker=runtime.sessionmaker, records=resources.records,
                                         poll_seconds=settings.scan_poll_seconds)
            resources.scans.start()

    async def stop_clients(runtime: ServiceRuntime[MergeResources]) -> None:
        resources, runtime.resources = runtime.resources, None
        if resources is None:
            return
        if resources.scans is not None:
            await resources.scans.stop()
        if resources.reconciler is not None:
            await resources.reconciler.stop()
        for client in (resources.records, resources.sync):
            await client.aclose()

    return create_service_app(
        settings=settings,
        title="Corral merge service",
        description="Merges of duplicate records, merge history, unmerge and duplicate suggestions.",
        routers=[merges.hubspot_router, merges.router, duplicates.router, duplicates.internal_router],
        # The records client exists only once the lifespan started; the consumer starts before the hooks
        # but handles nothing until messages arrive, and reads it through this late lookup.
        subscriptions=duplicate_events.subscriptions(lambda: clients["records"]),
        on_startup=[start_clients],
        on_shutdown=[stop_clients],
        state_metrics=STATE_METRICS,
    )


def run() -> None:
    cli.serve(create_app, Settings())


def migrate() -> None:
    cli.migrate(SERVICE_DIR, Settings())

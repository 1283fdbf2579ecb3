"""Corral Salesforce sync service: application factory and entry points."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from crm_common import cli
from crm_common.app import create_service_app
from sync_svc.api import internal
from sync_svc.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings=settings,
        title="Corral Salesforce sync service",
        description="Two-way Salesforce sync: connections, object and field mappings, sync rules and errors.",
        routers=[internal.router],
    )


def run() -> None:
    cli.serve(create_app, Settings())


def migrate() -> None:
    cli.migrate(SERVICE_DIR, Settings())

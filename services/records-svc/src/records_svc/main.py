"""records-svc: application factory and entry points."""

from __future__ import annotations

from pathlib import Path

from crm_common import cli
from crm_common.app import create_service_app
from fastapi import FastAPI

from records_svc.api import associations, export, internal, internal_sync, object_schemas, objects, properties
from records_svc.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings=settings,
        title="Corral records service",
        description="CRM records, properties, schemas, associations, history and the change journal "
        "(HubSpot CRM v3/v4 compatible).",
        routers=[properties.router, object_schemas.router, objects.router, objects.corral_router,
                 associations.router, export.router, internal.router, internal_sync.router],
    )


def run() -> None:
    cli.serve(create_app, Settings())


def migrate() -> None:
    cli.migrate(SERVICE_DIR, Settings())

"""Corral import service: application factory and entry points."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from crm_common import cli
from crm_common.app import create_service_app
from import_svc.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[2]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings=settings,
        title="Corral import service",
        description="Imports of CSV/XLSX files and mobile capture (HubSpot imports API compatible).",
        routers=[],
    )


def run() -> None:
    cli.serve(create_app, Settings())


def migrate() -> None:
    cli.migrate(SERVICE_DIR, Settings())

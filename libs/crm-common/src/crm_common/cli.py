"""Entry points every service shares: serve with uvicorn, migrate (create database + alembic upgrade)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from crm_common.db import prepare_database
from crm_common.settings import BaseServiceSettings


def serve(app_factory: Callable[[BaseServiceSettings], FastAPI], settings: BaseServiceSettings) -> None:
    uvicorn.run(
        app_factory(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


def migrate(service_dir: Path, settings: BaseServiceSettings) -> None:
    """Idempotent: safe to run on every deploy (a Kubernetes Job, a compose one-shot, `make run`)."""
    asyncio.run(prepare_database(service_dir, settings.database_url))
    print(f"{settings.service_name}: database ready at revision head")

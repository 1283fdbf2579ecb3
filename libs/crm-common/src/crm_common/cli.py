"""Entry points every service shares: serve with uvicorn, migrate (create database + alembic upgrade)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from crm_common.db import prepare_database
from crm_common.observability.metrics import MULTIPROC_ENV, prepare_multiprocess_dir
from crm_common.settings import BaseServiceSettings


def serve(app_factory: Callable[[BaseServiceSettings], FastAPI], settings: BaseServiceSettings) -> None:
    """One process, or `WEB_CONCURRENCY` uvicorn workers that each build the app from the environment.

    With several workers the metrics go through PROMETHEUS_MULTIPROC_DIR (a fresh temporary directory
    when it is not set) so that a scrape, answered by any worker, adds up all of them.
    """
    problem = settings.insecure_secret_problem()
    if problem is not None:
        print(f"{settings.service_name} refuses to start: {problem}", file=sys.stderr)
        sys.exit(2)
    workers = settings.workers
    if workers > 1:
        directory = os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="corral-metrics-")
        prepare_multiprocess_dir(directory)
        os.environ[MULTIPROC_ENV] = directory  # inherited by the workers uvicorn spawns
    uvicorn.run(
        f"{app_factory.__module__}:{app_factory.__qualname__}" if workers > 1 else app_factory(settings),
        factory=workers > 1,
        workers=workers if workers > 1 else None,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_seconds,
    )


def migrate(service_dir: Path, settings: BaseServiceSettings) -> None:
    """Idempotent: safe to run on every deploy (a Kubernetes Job, a compose one-shot, `make run`)."""
    asyncio.run(prepare_database(service_dir, settings.database_url))
    print(f"{settings.service_name}: database ready at revision head")

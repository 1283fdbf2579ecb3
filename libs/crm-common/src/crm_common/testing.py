"""Test helpers every service's suite uses: a real database per test session and signed requests."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from crm_common.auth import AUTH_HEADER, AuthContext, sign_context
from crm_common.db import drop_database, prepare_database
from crm_common.settings import DEFAULT_INTERNAL_SECRET, DEFAULT_PG_URL

PG_URL = os.environ.get("CORRAL_TEST_PG_URL", DEFAULT_PG_URL)


def unique_exchange(prefix: str = "corral.test") -> str:
    """An events exchange of a test's own, so parallel runs on one broker never see each other's events.

    Pass it as `exchange=` to a service's settings (consumers prefix their queue names with it) and
    set `queue_expires_ms` so the queues a run leaves behind expire.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}.{worker}.{uuid.uuid4().hex[:8]}"


TEST_QUEUE_EXPIRES_MS = 10 * 60 * 1000


def unique_database_url(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{PG_URL}/{prefix}_{worker}_{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def migrated_database(service_dir: Path, prefix: str) -> AsyncIterator[str]:
    """A fresh database with the service's real migrations, dropped afterwards."""
    url = unique_database_url(prefix)
    await prepare_database(service_dir, url)
    try:
        yield url
    finally:
        await drop_database(url)


def signed_headers(account_id: int, *, scopes: list[str] | None = None, secret: str = DEFAULT_INTERNAL_SECRET,
                   caller: str = "gateway") -> dict[str, str]:
    context = AuthContext(account_id=account_id, scopes=scopes or ["*"], caller=caller)
    return {AUTH_HEADER: sign_context(context, secret)}


@asynccontextmanager
async def asgi_client(app: FastAPI, account_id: int | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client bound to the app in-process (lifespan included), signing as `account_id`."""
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        headers = signed_headers(account_id) if account_id is not None else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://test",
                                     headers=headers, timeout=60) as client:
            yield client

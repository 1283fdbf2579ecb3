"""merge-svc runs against the real records-svc and sync-svc, in-process, each on its own migrated database."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from crm_common.testing import migrated_database, signed_headers
from merge_svc.main import create_app as create_merge_app
from merge_svc.settings import Settings as MergeSettings
from records_svc.main import create_app as create_records_app
from records_svc.settings import Settings as RecordsSettings
from sync_svc.main import create_app as create_sync_app
from sync_svc.settings import Settings as SyncSettings

SERVICE_DIR = Path(__file__).resolve().parents[1]
RECORDS_DIR = SERVICE_DIR.parent / "records-svc"
SYNC_DIR = SERVICE_DIR.parent / "sync-svc"
# Accounts differ between xdist workers too: the workers share one RabbitMQ, and a test that watches the
# broker for its account's events must not see another worker's test using the same number.
_accounts = itertools.count(70_000 + 1_000 * random.SystemRandom().randrange(1, 1_000_000))


@pytest.fixture(scope="session")
async def records_database() -> AsyncIterator[str]:
    async with migrated_database(RECORDS_DIR, "corral_records_mrgtest") as url:
        yield url


@pytest.fixture(scope="session")
async def merges_database() -> AsyncIterator[str]:
    async with migrated_database(SERVICE_DIR, "corral_merges_test") as url:
        yield url


@pytest.fixture(scope="session")
async def records_app(records_database: str) -> AsyncIterator[Any]:
    settings = RecordsSettings(database_url=records_database, log_json=False, log_level="WARNING",
                               run_outbox_relay=False, run_consumers=False)
    async with LifespanManager(create_records_app(settings), startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app


@pytest.fixture(scope="session")
async def sync_app() -> AsyncIterator[Any]:
    """sync-svc answers the status question from its database (no connection there: nothing syncs)."""
    async with migrated_database(SYNC_DIR, "corral_sync_mrgtest") as url:
        settings = SyncSettings(database_url=url, log_json=False, log_level="WARNING", run_worker=False,
                                run_consumers=False, run_outbox_relay=False)
        async with LifespanManager(create_sync_app(settings), startup_timeout=30, shutdown_timeout=30) as manager:
            yield manager.app


@pytest.fixture(scope="session")
async def merge_app(merges_database: str, records_app: Any, sync_app: Any) -> AsyncIterator[Any]:
    settings = MergeSettings(database_url=merges_database, log_json=False, log_level="WARNING",
                             run_consumers=False)
    app = create_merge_app(settings, records_transport=httpx.ASGITransport(app=records_app),
                           sync_transport=httpx.ASGITransport(app=sync_app))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        manager.app.runtime = app.state.runtime  # type: ignore[attr-defined]
        yield manager.app


@pytest.fixture
def account_id() -> int:
    """Each test works in its own account, so tests never see each other's records or merges."""
    return next(_accounts)


@pytest.fixture
async def merges(merge_app: Any, account_id: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=merge_app), base_url="http://merges",
                                 headers=signed_headers(account_id), timeout=120) as client:
        yield client


@pytest.fixture
async def records(records_app: Any, account_id: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=records_app), base_url="http://records",
                                 headers=signed_headers(account_id), timeout=120) as client:
        yield client

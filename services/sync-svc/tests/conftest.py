"""sync-svc against its real database, the real records-svc and the Salesforce emulator, all in-process.

records-svc publishes its record events through its outbox to RabbitMQ (an exchange of this run's own) and
sync-svc consumes them, as in production. The sync worker is off: tests drive cycles with `sync/run`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from crm_common.testing import TEST_QUEUE_EXPIRES_MS, migrated_database, signed_headers, unique_exchange
from records_svc.main import create_app as create_records_app
from records_svc.settings import Settings as RecordsSettings
from salesforce_emulator.app import create_app as create_emulator
from salesforce_emulator.settings import EmulatorSettings
from sync_svc.crypto import generate_key
from sync_svc.main import create_app as create_sync_app
from sync_svc.settings import Settings as SyncSettings

from .helpers import SALESFORCE, login

SERVICE_DIR = Path(__file__).resolve().parents[1]
RECORDS_DIR = SERVICE_DIR.parent / "records-svc"
_accounts = itertools.count(90_000 + 1_000 * random.SystemRandom().randrange(1, 1_000_000))


@pytest.fixture(scope="session")
def exchange() -> str:
    return unique_exchange("corral.test.sync")


@pytest.fixture(scope="session")
async def records_app(exchange: str) -> AsyncIterator[Any]:
    async with migrated_database(RECORDS_DIR, "corral_records_synctest") as url:
        settings = RecordsSettings(database_url=url, log_json=False, log_level="WARNING", exchange=exchange,
                                   queue_expires_ms=TEST_QUEUE_EXPIRES_MS)
        async with LifespanManager(create_records_app(settings), startup_timeout=30, shutdown_timeout=30) as manager:
            yield manager.app


@pytest.fixture
def emulator() -> Any:
    """A fresh org per test: records, counters and faults of one test never reach another."""
    return create_emulator(EmulatorSettings(enable_admin=True))


class EmulatorProxy:
    """sync-svc's Salesforce transport, pointed at the current test's emulator."""

    def __init__(self) -> None:
        self.app: Any = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


@pytest.fixture(scope="session")
def emulator_proxy() -> EmulatorProxy:
    return EmulatorProxy()


@pytest.fixture(scope="session")
async def sync_app(records_app: Any, emulator_proxy: EmulatorProxy, exchange: str) -> AsyncIterator[Any]:
    async with migrated_database(SERVICE_DIR, "corral_sync_test") as url:
        settings = SyncSettings(database_url=url, log_json=False, log_level="WARNING", exchange=exchange,
                                queue_expires_ms=TEST_QUEUE_EXPIRES_MS, encryption_key=generate_key(),
                                run_worker=False, salesforce_retry_base_delay=0.01, error_retry_seconds=0.0)
        app = create_sync_app(settings, records_transport=httpx.ASGITransport(app=records_app),
                              salesforce_transport=emulator_proxy)  # type: ignore[arg-type]
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
            manager.app.database_url = url  # type: ignore[attr-defined]
            manager.app.runtime = app.state.runtime  # type: ignore[attr-defined]
            yield manager.app


@pytest.fixture
def account_id() -> int:
    return next(_accounts)


@pytest.fixture
async def sync(sync_app: Any, emulator: Any, emulator_proxy: EmulatorProxy, account_id: int
               ) -> AsyncIterator[httpx.AsyncClient]:
    emulator_proxy.app = emulator
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sync_app), base_url="http://sync",
                                 headers=signed_headers(account_id), timeout=120) as client:
        yield client


@pytest.fixture
async def records(records_app: Any, account_id: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=records_app), base_url="http://records",
                                 headers=signed_headers(account_id), timeout=120) as client:
        yield client


@pytest.fixture
async def salesforce(emulator: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The org as people and automation see it: the emulator's admin API and its data API."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator), base_url=SALESFORCE,
                                 timeout=60) as client:
        await login(client)
        yield client



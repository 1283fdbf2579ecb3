"""sync-svc against its real database, the real records-svc and the Salesforce emulator, all in-process.

records-svc publishes its record events through its outbox to RabbitMQ (an exchange of this run's own) and
sync-svc consumes them, as in production. The sync worker is off: tests drive cycles with `sync/run`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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

SERVICE_DIR = Path(__file__).resolve().parents[1]
RECORDS_DIR = SERVICE_DIR.parent / "records-svc"
SALESFORCE = "https://emu.my.salesforce.com"
CLIENT = {"loginUrl": SALESFORCE, "flow": "client_credentials", "clientId": "corral-emulator",
          "clientSecret": "corral-emulator-secret"}
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
        token = (await client.post("/services/oauth2/token", data={
            "grant_type": "client_credentials", "client_id": CLIENT["clientId"],
            "client_secret": CLIENT["clientSecret"]})).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, every: float = 0.1) -> Any:
    """The check's first truthy answer (events travel through RabbitMQ, so the queue fills a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(every)


async def connect_and_start(sync: httpx.AsyncClient, *objects: tuple[str, str]) -> dict[str, Any]:
    connected = await sync.put("/corral/v1/salesforce/connection", json=CLIENT)
    assert connected.status_code == 200, connected.text
    for object_type, salesforce_object in objects:
        enabled = await sync.put(f"/corral/v1/salesforce/objects/{object_type}",
                                 json={"salesforceObject": salesforce_object, "enabled": True})
        assert enabled.status_code == 200, enabled.text
    started = await sync.post("/corral/v1/salesforce/sync/start")
    assert started.status_code == 200, started.text
    return started.json()


async def queued(sync: httpx.AsyncClient) -> int:
    return (await sync.get("/corral/v1/salesforce/sync/status")).json()["queuedChanges"]


async def run(sync: httpx.AsyncClient) -> dict[str, Any]:
    response = await sync.post("/corral/v1/salesforce/sync/run")
    assert response.status_code == 200, response.text
    return response.json()


async def sf_query(salesforce: httpx.AsyncClient, soql: str) -> list[dict[str, Any]]:
    response = await salesforce.get("/services/data/v60.0/queryAll" if "IsDeleted" in soql
                                    else "/services/data/v60.0/query", params={"q": soql})
    assert response.status_code == 200, response.text
    return response.json()["records"]


async def admin(salesforce: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    response = await salesforce.request(method, f"/__emulator__{path}", **kw)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def api_calls(salesforce: httpx.AsyncClient) -> int:
    return (await admin(salesforce, "GET", "/api-usage"))["total"]

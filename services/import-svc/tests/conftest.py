"""import-svc runs against the real records-svc, in-process, each on its own migrated database."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from crm_common.testing import migrated_database, signed_headers
from import_svc.main import create_app as create_import_app
from import_svc.settings import Settings as ImportSettings
from records_svc.main import create_app as create_records_app
from records_svc.settings import Settings as RecordsSettings

SERVICE_DIR = Path(__file__).resolve().parents[1]
RECORDS_DIR = SERVICE_DIR.parent / "records-svc"
# Accounts differ between xdist workers too: the workers share one RabbitMQ, and a test that watches the
# broker for its account's events must not see another worker's test using the same number.
_accounts = itertools.count(50_000 + 1_000 * random.SystemRandom().randrange(1, 1_000_000))
FINAL_STATES = {"DONE", "FAILED", "CANCELED", "REVERTED"}


@pytest.fixture(scope="session")
async def records_database() -> AsyncIterator[str]:
    async with migrated_database(RECORDS_DIR, "corral_records_imptest") as url:
        yield url


@pytest.fixture(scope="session")
async def imports_database() -> AsyncIterator[str]:
    async with migrated_database(SERVICE_DIR, "corral_imports_test") as url:
        yield url


@pytest.fixture(scope="session")
async def records_app(records_database: str) -> AsyncIterator[Any]:
    settings = RecordsSettings(database_url=records_database, log_json=False, log_level="WARNING")
    async with LifespanManager(create_records_app(settings), startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app


@pytest.fixture(scope="session")
def file_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("import-files")


@pytest.fixture(scope="session")
def import_app_factory(imports_database: str, records_app: Any, file_store: Path) -> Callable[..., Any]:
    """Builds an import-svc instance (its own worker) on the shared test database."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, Any] = {"database_url": imports_database, "log_json": False, "log_level": "WARNING",
                                  "file_store_dir": str(file_store), "worker_poll_interval": 0.1,
                                  "worker_batch_size": 1000, "worker_lease_seconds": 60, "run_outbox_relay": False}
        values.update(overrides)
        app = create_import_app(ImportSettings(**values), records_transport=httpx.ASGITransport(app=records_app))
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://imports",
                                  timeout=120) as client:
            client.service_app = app  # type: ignore[attr-defined]
            yield client

    return build


@pytest.fixture
async def private_database() -> AsyncIterator[str]:
    """A database no other test's worker polls: for tests that pause or crash workers."""
    async with migrated_database(SERVICE_DIR, "corral_imports_private") as url:
        yield url


@pytest.fixture(scope="session")
async def import_service(import_app_factory: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with import_app_factory() as client:
        yield client


@pytest.fixture
def account_id() -> int:
    """Each test works in its own account, so tests never see each other's records or imports."""
    return next(_accounts)


@pytest.fixture
def new_account() -> Callable[[], int]:
    """More accounts of the test's own (tests about several accounts at once)."""
    return lambda: next(_accounts)


@pytest.fixture
def imports(import_service: httpx.AsyncClient, account_id: int) -> httpx.AsyncClient:
    import_service.headers.update(signed_headers(account_id))
    return import_service


@pytest.fixture
async def records(records_app: Any, account_id: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=records_app), base_url="http://records",
                                 headers=signed_headers(account_id), timeout=60) as client:
        yield client


async def start_import(client: httpx.AsyncClient, request: dict[str, Any], files: dict[str, bytes],
                       *, path: str = "/crm/v3/imports/") -> httpx.Response:
    return await client.post(path, data={"importRequest": orjson.dumps(request).decode()},
                             files=[("files", (name, content, "text/csv")) for name, content in files.items()])


async def wait_final(client: httpx.AsyncClient, import_id: str, *, timeout: float = 120) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/crm/v3/imports/{import_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if body["state"] in FINAL_STATES:
            return body
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"import {import_id} still {body['state']}: {body}")
        await asyncio.sleep(0.1)


async def all_errors(client: httpx.AsyncClient, import_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, "includeErrorMessage": "true", "includeRowData": "true"}
        if after:
            params["after"] = after
        body = (await client.get(f"/crm/v3/imports/{import_id}/errors", params=params)).json()
        out.extend(body["results"])
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return out


async def search_all(records: httpx.AsyncClient, object_type: str, properties: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100, "properties": ",".join(properties)}
        if after:
            params["after"] = after
        response = await records.get(f"/crm/v3/objects/{object_type}", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        out.extend(body["results"])
        after = (body.get("paging") or {}).get("next", {}).get("after")
        if not after:
            return out


def contacts_request(columns: list[tuple[str, str | None]], *, file_name: str = "contacts.csv",
                     **extra: Any) -> dict[str, Any]:
    mappings = []
    for name, prop in columns:
        if prop is None:
            mappings.append({"columnName": name, "ignored": True})
        else:
            mappings.append({"columnObjectTypeId": "0-1", "columnName": name, "propertyName": prop})
    return {"name": extra.pop("name", "test import"), "files": [
        {"fileName": file_name, "fileFormat": "CSV", "fileImportPage": {"hasHeader": True, "columnMappings": mappings}}],
        **extra}

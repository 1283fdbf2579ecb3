from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from crm_common.testing import asgi_client, migrated_database, signed_headers
from records_svc.main import create_app
from records_svc.settings import Settings

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Accounts differ between xdist workers too: the workers share one RabbitMQ, and a test that watches the
# broker for its account's events must not see another worker's test using the same number.
_accounts = itertools.count(1000 + 1_000 * random.SystemRandom().randrange(1, 1_000_000))


@pytest.fixture(scope="session")
async def records_database() -> AsyncIterator[str]:
    async with migrated_database(SERVICE_DIR, "corral_records_test") as url:
        yield url


@pytest.fixture(scope="session")
async def records_app_client(records_database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=records_database, log_json=False, log_level="WARNING")
    async with asgi_client(create_app(settings)) as client:
        client.app_settings = settings  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def account_id() -> int:
    """Each test works in its own account, so tests never see each other's records."""
    return next(_accounts)


@pytest.fixture
def api(records_app_client: httpx.AsyncClient, account_id: int) -> httpx.AsyncClient:
    records_app_client.headers.update(signed_headers(account_id))
    return records_app_client

"""What every test run shares: small database pools, released between test modules.

Postgres serves 100 clients by default, and a test run keeps many pools open at once: each pytest worker
holds the in-process apps of every service's tests (session fixtures, so migrations run once) plus a whole
suite for the end-to-end tests. Small pools (as many again in a burst) keep a module's needs met, and the
idle connections of every pool are closed when a module ends, so apps whose tests are done hold none.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

for prefix in ("RECORDS_SVC_", "IMPORT_SVC_", "MERGE_SVC_", "SYNC_SVC_", "GATEWAY_"):
    os.environ.setdefault(f"{prefix}DB_POOL_SIZE", "3")

_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


@event.listens_for(Engine, "engine_connect")
def _remember_engine(connection: Connection) -> None:
    _engines.add(connection.engine)


@pytest.fixture(scope="module", autouse=True)
async def _close_idle_connections() -> AsyncIterator[None]:
    yield
    for engine in list(_engines):
        if engine.dialect.is_async:
            # Only checked-in connections close; one in use finishes its work and is closed when returned.
            # A connection made on another event loop (a test's own asyncio.run) cannot be closed from here.
            with contextlib.suppress(Exception):
                await AsyncEngine(engine).dispose()

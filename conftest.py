"""What every test run shares: small database pools, released between test modules.

Postgres serves 100 clients by default, and a test run keeps many pools open at once: each pytest worker
holds the in-process apps of every service's tests (session fixtures, so migrations run once) plus a whole
suite for the end-to-end tests. Small pools (as many again in a burst) keep a module's needs met, and the
idle connections of every pool are closed when a module ends, so apps whose tests are done hold none.
"""

from __future__ import annotations

import asyncio
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

# Each engine with the event loop its connections were made on: only those of the loop a module fixture runs
# on (the session's) can be closed from it. Closing another loop's connection fails inside SQLAlchemy, whose
# error log formats a traceback, which can crash CPython 3.11's traceback formatter.
_engines: weakref.WeakKeyDictionary[Engine, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()


@event.listens_for(Engine, "engine_connect")
def _remember_engine(connection: Connection) -> None:
    with contextlib.suppress(RuntimeError):  # no running loop: a synchronous engine
        _engines.setdefault(connection.engine, asyncio.get_running_loop())


@pytest.fixture(scope="module", autouse=True)
async def _close_idle_connections() -> AsyncIterator[None]:
    yield
    loop = asyncio.get_running_loop()
    for engine, made_on in list(_engines.items()):
        if made_on is loop and engine.dialect.is_async:
            # Only checked-in connections close; one in use finishes its work and is closed when returned.
            await AsyncEngine(engine).dispose()

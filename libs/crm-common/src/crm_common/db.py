"""Async engine and session helpers, database creation and migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from crm_common.settings import to_async_url, to_plain_url


def make_engine(database_url: str, *, pool_size: int = 10, pre_ping: bool = False) -> AsyncEngine:
    return create_async_engine(
        to_async_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        # JSONB in and out through orjson: it is several times faster on large property maps.
        json_serializer=_json_dumps,
        json_deserializer=_json_loads,
    )


def _json_dumps(value: object) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _json_loads(value: str | bytes) -> object:
    import orjson

    return orjson.loads(value)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on success, rolls back on any error."""
    async with sessionmaker() as session, session.begin():
        yield session


def _split_database(url: str) -> tuple[str, str]:
    parts = urlsplit(to_plain_url(url))
    name = parts.path.lstrip("/")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    return admin, name


async def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist yet; True when it was created."""
    admin_url, name = _split_database(database_url)
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


async def drop_database(database_url: str) -> None:
    admin_url, name = _split_database(database_url)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_migrations(service_dir: Path, database_url: str, revision: str = "head") -> None:
    """Run a service's alembic tree against a database (blocking; call from a thread or a CLI)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, revision)


async def prepare_database(service_dir: Path, database_url: str) -> None:
    """Create the database if needed and bring its schema to the newest revision."""
    await ensure_database(database_url)
    await asyncio.to_thread(run_migrations, service_dir, database_url)

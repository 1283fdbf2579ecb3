"""Helpers for each service's alembic tree: the async env runner and the shared outbox/inbox tables."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from crm_common.settings import to_async_url


def run_env(database_url_env: str, default_url: str) -> None:
    """Body of every service's migrations/env.py.

    The URL comes from the caller (tests, the migrate command) or from the service's own
    environment variable, so `alembic upgrade head` works the same in a container and locally.
    """
    config = context.config
    url = config.attributes.get("database_url") or os.environ.get(database_url_env) or default_url
    config.set_main_option("sqlalchemy.url", to_async_url(url))

    if context.is_offline_mode():
        context.configure(url=to_async_url(url), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config(
            config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
        )
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


OUTBOX_DDL = [
    """
    CREATE TABLE outbox (
        id bigserial PRIMARY KEY,
        event_type text NOT NULL,
        content_type text NOT NULL,
        body bytea NOT NULL,
        event_count integer NOT NULL DEFAULT 1,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # Wake the relay as soon as a transaction that wrote events commits (NOTIFY is delivered on commit).
    """
    CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('outbox', '');
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()
    """,
    """
    CREATE TABLE inbox (
        consumer text NOT NULL,
        event_id text NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
]

OUTBOX_DROP = [
    "DROP TABLE IF EXISTS inbox",
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "DROP FUNCTION IF EXISTS outbox_notify()",
    "DROP TABLE IF EXISTS outbox",
]


def create_outbox_tables() -> None:
    from alembic import op

    for statement in OUTBOX_DDL:
        op.execute(statement)


def drop_outbox_tables() -> None:
    from alembic import op

    for statement in OUTBOX_DROP:
        op.execute(statement)

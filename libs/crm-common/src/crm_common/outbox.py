"""Transactional outbox: events are rows written in the same transaction as the change they announce.

The relay publishes committed rows to RabbitMQ with publisher confirms and deletes them only once
the broker has confirmed, so a broker outage delays events but never loses one, and a rolled-back
change never publishes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import aio_pika
import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from crm_common.cloudevents import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    encode_batch,
    encode_event,
)
from crm_common.settings import to_plain_url

log = structlog.get_logger(__name__)

# Large enough that a bulk write is a handful of messages, small enough to stay well under
# RabbitMQ's default 128 MB frame limit even with wide records.
MAX_EVENTS_PER_BATCH = 1000

_INSERT = text(
    "INSERT INTO outbox (event_type, content_type, body, event_count) "
    "VALUES (:event_type, :content_type, :body, :event_count)"
)


async def add_event(session: AsyncSession | AsyncConnection, event: CloudEvent) -> None:
    """Queue one event in the caller's transaction."""
    await session.execute(
        _INSERT,
        {
            "event_type": event.type,
            "content_type": STRUCTURED_CONTENT_TYPE,
            "body": encode_event(event),
            "event_count": 1,
        },
    )


async def add_events(session: AsyncSession | AsyncConnection,
                     events: Sequence[CloudEvent] | Sequence[dict[str, Any]]) -> None:
    """Queue many events in the caller's transaction, as CloudEvents batches grouped by type."""
    by_type: dict[str, list[Any]] = {}
    for event in events:
        event_type = event["type"] if isinstance(event, dict) else event.type
        by_type.setdefault(event_type, []).append(event)
    rows = []
    for event_type, group in by_type.items():
        for start in range(0, len(group), MAX_EVENTS_PER_BATCH):
            chunk = group[start : start + MAX_EVENTS_PER_BATCH]
            rows.append(
                {
                    "event_type": event_type,
                    "content_type": BATCH_CONTENT_TYPE,
                    "body": encode_batch(chunk),
                    "event_count": len(chunk),
                }
            )
    if rows:
        await session.execute(_INSERT, rows)


async def add_events_asyncpg(conn: asyncpg.Connection, events: Sequence[CloudEvent]) -> None:
    """The same as add_events for bulk paths that run on a raw asyncpg connection."""
    by_type: dict[str, list[CloudEvent]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)
    rows = []
    for event_type, group in by_type.items():
        for start in range(0, len(group), MAX_EVENTS_PER_BATCH):
            chunk = group[start : start + MAX_EVENTS_PER_BATCH]
            rows.append((event_type, BATCH_CONTENT_TYPE, encode_batch(chunk), len(chunk)))
    if rows:
        await conn.executemany(
            "INSERT INTO outbox (event_type, content_type, body, event_count) VALUES ($1, $2, $3, $4)", rows
        )


class OutboxRelay:
    """Publishes outbox rows in commit order; any replica may run one (rows are claimed with SKIP LOCKED)."""

    def __init__(
        self,
        *,
        database_url: str,
        amqp_url: str,
        exchange: str,
        source: str,
        batch_size: int = 200,
        poll_interval: float = 2.0,
    ) -> None:
        self._database_url = to_plain_url(database_url)
        self._amqp_url = amqp_url
        self._exchange_name = exchange
        self._source = source
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published_messages = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._source}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            try:
                await self._serve()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database went away: retry, the rows stay
                log.warning("outbox relay interrupted; retrying", error=repr(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _serve(self) -> None:
        db = await asyncpg.connect(self._database_url)
        amqp = await aio_pika.connect(self._amqp_url)
        try:
            await db.add_listener("outbox", lambda *_: self._wake.set())
            channel = await amqp.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            while not self._stopping:
                published = await self._publish_batch(db, exchange)
                if published:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)
                if amqp.is_closed:
                    raise ConnectionError("broker connection closed")
        finally:
            with contextlib.suppress(Exception):
                await amqp.close()
            with contextlib.suppress(Exception):
                await db.close()

    async def _publish_batch(self, db: asyncpg.Connection, exchange: aio_pika.abc.AbstractExchange) -> int:
        async with db.transaction():
            rows = await db.fetch(
                "SELECT id, event_type, content_type, body FROM outbox ORDER BY id "
                "LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            confirmations = [
                exchange.publish(
                    aio_pika.Message(
                        body=bytes(row["body"]),
                        content_type=row["content_type"],
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=f"{self._source}:{row['id']}",
                        app_id=self._source,
                    ),
                    routing_key=row["event_type"],
                )
                for row in rows
            ]
            # Raises if the broker nacks or the channel drops: the transaction rolls back and the
            # rows are published again later (at least once; consumers deduplicate by event id).
            await asyncio.gather(*confirmations)
            await db.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.published_messages += len(rows)
        return len(rows)

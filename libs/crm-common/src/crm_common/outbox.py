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
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from crm_common.cloudevents import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    encode_batch,
    encode_event,
)
from crm_common.observability import metrics, tracing
from crm_common.settings import to_plain_url

log = structlog.get_logger(__name__)

# Large enough that a bulk write is a handful of messages, small enough to stay well under
# RabbitMQ's default 128 MB frame limit even with wide records.
MAX_EVENTS_PER_BATCH = 1000

_INSERT = text(
    "INSERT INTO outbox (event_type, content_type, body, event_count) "
    "VALUES (:event_type, :content_type, :body, :event_count)"
)


def _stamp_trace(events: Sequence[CloudEvent] | Sequence[dict[str, Any]]) -> None:
    """Events carry the trace of the change that made them (nothing to do when tracing is off)."""
    traceparent = tracing.current_traceparent()
    if traceparent is None:
        return
    for event in events:
        if isinstance(event, dict):
            event.setdefault("traceparent", traceparent)
        elif event.traceparent is None:
            event.traceparent = traceparent


def _count_written(event_type: str, count: int) -> None:
    metrics.OUTBOX_EVENTS_WRITTEN.labels(event_type).inc(count)


async def add_event(session: AsyncSession | AsyncConnection, event: CloudEvent) -> None:
    """Queue one event in the caller's transaction."""
    _stamp_trace([event])
    _count_written(event.type, 1)
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
    _stamp_trace(events)
    by_type: dict[str, list[Any]] = {}
    for event in events:
        event_type = event["type"] if isinstance(event, dict) else event.type
        by_type.setdefault(event_type, []).append(event)
    rows = []
    for event_type, group in by_type.items():
        _count_written(event_type, len(group))
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
    _stamp_trace(events)
    by_type: dict[str, list[CloudEvent]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)
    rows = []
    for event_type, group in by_type.items():
        _count_written(event_type, len(group))
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
        confirm_timeout: float = 10.0,
    ) -> None:
        self._database_url = to_plain_url(database_url)
        self._amqp_url = amqp_url
        self._exchange_name = exchange
        self._source = source
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._confirm_timeout = confirm_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published_messages = 0
        # None when tracing is off: then a row's body is never searched for its trace context.
        self._tracer = tracing.tracer("crm_common.outbox") if tracing.active_provider() is not None else None

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
                metrics.OUTBOX_RELAY_INTERRUPTIONS.inc()
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
                "SELECT id, event_type, content_type, body, event_count, "
                "extract(epoch FROM clock_timestamp() - created_at) AS waited FROM outbox ORDER BY id "
                "LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            if not rows:
                return 0
            spans: list[Span] = []
            confirmations = [self._publish(exchange, row, spans) for row in rows]
            try:
                # Raises if the broker nacks or the channel drops: the transaction rolls back and the
                # rows are published again later (at least once; consumers deduplicate by event id).
                # A publish sent just as the connection died may never be confirmed nor refused: past the
                # timeout the connection is treated as dead and made again.
                await asyncio.wait_for(asyncio.gather(*confirmations), timeout=self._confirm_timeout)
            except Exception as exc:
                for span in spans:
                    span.record_exception(exc)
                    span.set_status(StatusCode.ERROR)
                raise
            finally:
                for span in spans:
                    span.end()
            await db.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.published_messages += len(rows)
        for row in rows:
            metrics.OUTBOX_MESSAGES_PUBLISHED.labels(row["event_type"]).inc()
            metrics.OUTBOX_EVENTS_PUBLISHED.labels(row["event_type"]).inc(row["event_count"])
            metrics.OUTBOX_PUBLISH_LAG.observe(max(float(row["waited"] or 0), 0.0))
        return len(rows)

    def _publish(self, exchange: aio_pika.abc.AbstractExchange, row: asyncpg.Record,
                 spans: list[Span]) -> Any:
        body = bytes(row["body"])
        message_id = f"{self._source}:{row['id']}"
        headers: dict[str, Any] = {}
        if self._tracer is not None:
            span = self._tracer.start_span(
                f"publish {row['event_type']}", context=tracing.context_from(traceparent_in(body)),
                kind=SpanKind.PRODUCER, attributes={
                    "messaging.system": "rabbitmq", "messaging.operation.type": "send",
                    "messaging.destination.name": self._exchange_name,
                    "messaging.rabbitmq.destination.routing_key": row["event_type"],
                    "messaging.message.id": message_id, "messaging.batch.message_count": row["event_count"],
                })
            spans.append(span)
            # AMQP tools that do not read CloudEvents bodies still see where the message came from.
            headers[tracing.TRACEPARENT] = tracing.traceparent_of(span)
        return exchange.publish(
            aio_pika.Message(
                body=body,
                content_type=row["content_type"],
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id,
                app_id=self._source,
                headers=headers or None,
            ),
            routing_key=row["event_type"],
        )


_TRACEPARENT_KEY = b'"traceparent":"'
# version-traceid-spanid-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2
_TRACEPARENT_LENGTH = 55


def traceparent_in(body: bytes) -> str | None:
    """The first event's `traceparent` in an outbox body, found without parsing a whole batch.

    Every event of one outbox row comes from one transaction, so the first one's context is the row's.
    """
    at = body.find(_TRACEPARENT_KEY)
    if at < 0:
        return None
    start = at + len(_TRACEPARENT_KEY)
    return body[start : start + _TRACEPARENT_LENGTH].decode("ascii", "replace")

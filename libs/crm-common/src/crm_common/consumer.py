"""Idempotent event consumers: one durable queue per purpose, an inbox table for deduplication.

Queues are quorum queues with a delivery limit: a handler that keeps failing is retried a bounded
number of times and then dead-lettered to `<exchange>.dlx`, where an operator can inspect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import aio_pika
import structlog
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_common.cloudevents import CloudEvent, decode_events
from crm_common.observability import metrics, tracing
from crm_common.settings import DEFAULT_EXCHANGE

log = structlog.get_logger(__name__)

EventHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[CloudEvent]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """`handler` runs once per event in a transaction of its own; `batch_handler` (when given instead) runs
    once per message with every event of a CloudEvents batch not seen before, in one transaction: a bulk
    write's thousand events then cost one transaction, not a thousand."""

    queue: str  # `<service>.<purpose>`
    routing_keys: Sequence[str]
    handler: EventHandler | None = None
    delivery_limit: int = 5
    batch_handler: BatchHandler | None = None


def queue_name(exchange: str, queue: str) -> str:
    """`<service>.<purpose>` on the default exchange; prefixed by any other exchange's name.

    Private suites and test runs publish to an exchange of their own (`CORRAL_EXCHANGE`) on a shared
    broker; without the prefix their consumers would read from one queue and handle each other's events.
    """
    return queue if exchange == DEFAULT_EXCHANGE else f"{exchange}.{queue}"


def queue_arguments(expires_ms: int | None) -> dict[str, int]:
    return {"x-expires": expires_ms} if expires_ms else {}


async def declare_dead_letter(channel: aio_pika.abc.AbstractChannel, exchange: str,
                              expires_ms: int | None = None) -> str:
    dlx_name = f"{exchange}.dlx"
    dlx = await channel.declare_exchange(dlx_name, aio_pika.ExchangeType.FANOUT, durable=True)
    dead = await channel.declare_queue(f"{exchange}.dead-letters", durable=True,
                                       arguments=queue_arguments(expires_ms))
    await dead.bind(dlx)
    return dlx_name


@dataclass
class QueueDepths:
    """Ready messages and attached consumers per queue, and the dead-letter queue's depth."""

    queues: dict[str, tuple[int, int]] = field(default_factory=dict)
    dead_letter_queue: str = ""
    dead_letters: int = 0


class EventConsumer:
    """Runs subscriptions; each event is handled at most once per queue thanks to the inbox table."""

    def __init__(
        self,
        *,
        amqp_url: str,
        exchange: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        subscriptions: Sequence[Subscription],
        prefetch: int = 20,
        queue_expires_ms: int | None = None,
    ) -> None:
        self._amqp_url = amqp_url
        self._exchange_name = exchange
        self._sessionmaker = sessionmaker
        self._subscriptions = subscriptions
        self._prefetch = prefetch
        self._queue_expires_ms = queue_expires_ms
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def start(self) -> None:
        if not self._subscriptions:
            return
        self._connection = await aio_pika.connect_robust(self._amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        exchange = await channel.declare_exchange(self._exchange_name, aio_pika.ExchangeType.TOPIC,
                                                  durable=True)
        dlx_name = await declare_dead_letter(channel, self._exchange_name, self._queue_expires_ms)
        for sub in self._subscriptions:
            queue = await channel.declare_queue(
                queue_name(self._exchange_name, sub.queue),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": sub.delivery_limit,
                    "x-dead-letter-exchange": dlx_name,
                    **queue_arguments(self._queue_expires_ms),
                },
            )
            for key in sub.routing_keys:
                await queue.bind(exchange, routing_key=key)
            await queue.consume(self._make_callback(sub))

    async def queue_depths(self) -> QueueDepths:
        """Asked of the broker (passive declares), so every replica reports the queues' real state."""
        if self._connection is None:
            raise ConnectionError("the consumer is not connected")
        depths = QueueDepths(dead_letter_queue=f"{self._exchange_name}.dead-letters")
        async with self._connection.channel() as channel:
            for sub in self._subscriptions:
                name = queue_name(self._exchange_name, sub.queue)
                declared = (await channel.declare_queue(name, passive=True)).declaration_result
                depths.queues[sub.queue] = (declared.message_count or 0, declared.consumer_count or 0)
            dead = (await channel.declare_queue(depths.dead_letter_queue, passive=True)).declaration_result
            depths.dead_letters = dead.message_count or 0
        return depths

    async def stop(self) -> None:
        if self._connection:
            with contextlib.suppress(Exception):
                await self._connection.close()

    def _make_callback(
        self, sub: Subscription
    ) -> Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            started = time.perf_counter()
            if message.redelivered:
                metrics.CONSUMER_REDELIVERIES.labels(sub.queue).inc()
            try:
                events = decode_events(message.body, message.content_type)
            except Exception as exc:
                log.error("undecodable event dead-lettered", queue=sub.queue, error=repr(exc))
                metrics.CONSUMER_MESSAGES.labels(sub.queue, "rejected").inc()
                await message.reject(requeue=False)
                return
            traceparents = list(dict.fromkeys(e.traceparent for e in events if e.traceparent))
            with tracing.continued_span(
                f"process {message.routing_key}", traceparent=traceparents[0] if traceparents else None,
                kind=SpanKind.CONSUMER, tracer_name="crm_common.consumer", links=traceparents[1:],
                attributes={"messaging.system": "rabbitmq", "messaging.operation.type": "process",
                            "messaging.destination.name": self._exchange_name,
                            "messaging.destination.subscription.name": sub.queue,
                            "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
                            "messaging.message.id": message.message_id or "",
                            "messaging.batch.message_count": len(events)},
            ) as span:
                try:
                    if sub.batch_handler is not None:
                        fresh = await handle_batch_once(self._sessionmaker, sub.queue, events, sub.batch_handler)
                        metrics.CONSUMER_EVENTS.labels(sub.queue, "handled").inc(fresh)
                        metrics.CONSUMER_EVENTS.labels(sub.queue, "duplicate").inc(len(events) - fresh)
                    for event in events if sub.handler is not None and sub.batch_handler is None else ():
                        assert sub.handler is not None
                        handled = await handle_once(self._sessionmaker, sub.queue, event, sub.handler)
                        metrics.CONSUMER_EVENTS.labels(sub.queue, "handled" if handled else "duplicate").inc()
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(StatusCode.ERROR)
                    log.warning("event handler failed; will retry", queue=sub.queue, error=repr(exc))
                    metrics.CONSUMER_EVENTS.labels(sub.queue, "failed").inc()
                    metrics.CONSUMER_MESSAGES.labels(sub.queue, "retried").inc()
                    await asyncio.sleep(0.2)
                    await message.nack(requeue=True)
                    return
                finally:
                    metrics.CONSUMER_HANDLE_DURATION.labels(sub.queue).observe(time.perf_counter() - started)
            await message.ack()
            metrics.CONSUMER_MESSAGES.labels(sub.queue, "acked").inc()
            lag = event_age(events[0]) if events else None
            if lag is not None:
                metrics.CONSUMER_LAG.labels(sub.queue).observe(lag)

        return on_message


def event_age(event: CloudEvent) -> float | None:
    """Seconds since the event was made (its CloudEvents `time`); None if the time is unreadable."""
    try:
        made = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(time.time() - made.timestamp(), 0.0)


async def handle_once(
    sessionmaker: async_sessionmaker[AsyncSession], consumer: str, event: CloudEvent, handler: EventHandler
) -> bool:
    """Run `handler` for `event` unless this consumer already did; False when it was a duplicate."""
    async with sessionmaker() as session, session.begin():
        inserted = await session.execute(
            text(
                "INSERT INTO inbox (consumer, event_id) VALUES (:consumer, :event_id) "
                "ON CONFLICT DO NOTHING RETURNING 1"
            ),
            {"consumer": consumer, "event_id": event.id},
        )
        if inserted.scalar() is None:
            return False
        await handler(session, event)
        return True


async def handle_batch_once(sessionmaker: async_sessionmaker[AsyncSession], consumer: str,
                            events: Sequence[CloudEvent], handler: BatchHandler) -> int:
    """Run `handler` once with the events of `events` this consumer has not handled yet; answers how many."""
    if not events:
        return 0
    async with sessionmaker() as session, session.begin():
        inserted = await session.execute(
            text(
                "INSERT INTO inbox (consumer, event_id) SELECT :consumer, unnest(CAST(:ids AS text[])) "
                "ON CONFLICT DO NOTHING RETURNING event_id"
            ),
            {"consumer": consumer, "ids": [event.id for event in events]},
        )
        fresh_ids = {row[0] for row in inserted}
        fresh = [event for event in events if event.id in fresh_ids]
        if fresh:
            await handler(session, fresh)
        return len(fresh)

"""Idempotent event consumers: one durable queue per purpose, an inbox table for deduplication.

Queues are quorum queues with a delivery limit: a handler that keeps failing is retried a bounded
number of times and then dead-lettered to `<exchange>.dlx`, where an operator can inspect it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aio_pika
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_common.cloudevents import CloudEvent, decode_events
from crm_common.settings import DEFAULT_EXCHANGE

log = structlog.get_logger(__name__)

EventHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    queue: str  # `<service>.<purpose>`
    routing_keys: Sequence[str]
    handler: EventHandler
    delivery_limit: int = 5


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
        exchange = await channel.declare_exchange(self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
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

    async def stop(self) -> None:
        if self._connection:
            with contextlib.suppress(Exception):
                await self._connection.close()

    def _make_callback(self, sub: Subscription) -> Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            try:
                events = decode_events(message.body, message.content_type)
            except Exception as exc:
                log.error("undecodable event dead-lettered", queue=sub.queue, error=repr(exc))
                await message.reject(requeue=False)
                return
            try:
                for event in events:
                    await handle_once(self._sessionmaker, sub.queue, event, sub.handler)
            except Exception as exc:
                log.warning("event handler failed; will retry", queue=sub.queue, error=repr(exc))
                await asyncio.sleep(0.2)
                await message.nack(requeue=True)
                return
            await message.ack()

        return on_message


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

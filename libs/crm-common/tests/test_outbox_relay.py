"""The outbox relay loses no committed event when the broker goes away, and publishes nothing rolled back."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from crm_common.cloudevents import CloudEvent, decode_events
from crm_common.db import make_engine, make_sessionmaker, transaction
from crm_common.outbox import OutboxRelay, add_event, add_events
from crm_common.settings import DEFAULT_AMQP_URL
from crm_common.testing import migrated_database

# merge-svc's tree holds only the shared outbox/inbox tables so far, which is all the relay needs.
SERVICE_DIR = Path(__file__).resolve().parents[3] / "services" / "merge-svc"
BROKER_PORT = 5672


class BrokerLink:
    """A TCP proxy in front of the real RabbitMQ: cutting it is a broker outage for whoever uses it,
    without stopping the machine's broker under every other test."""

    def __init__(self) -> None:
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.connections: set[asyncio.StreamWriter] = set()
        # Connections whose bytes are dropped both ways while their sockets stay open (a half-open link).
        self.stalled: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.connections):
            writer.transport.abort()
        self.connections.clear()

    def stall(self) -> None:
        """The open connections go silent without closing; new ones pass as before."""
        self.stalled.update(self.connections)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", BROKER_PORT)
        self.connections.update({client_writer, broker_writer})

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await reader.read(65536):
                    if writer in self.stalled or client_writer in self.stalled:
                        continue
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))


@pytest.fixture
async def outbox_database() -> AsyncIterator[str]:
    async with migrated_database(SERVICE_DIR, "corral_outbox_test") as url:
        yield url


async def collect(queue: aio_pika.abc.AbstractQueue, expected: set[str], timeout: float) -> set[str]:
    seen: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    while not expected <= seen and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        seen.update(e.id for e in decode_events(message.body, message.content_type))
    return seen


async def test_a_broker_connection_that_goes_silent_is_replaced(outbox_database: str) -> None:
    """A publish whose confirmation never comes (the link died without a close) does not stall the relay."""
    exchange_name = f"corral.test.{uuid.uuid4().hex[:8]}"
    link = BrokerLink()
    await link.up()
    listener = await aio_pika.connect(DEFAULT_AMQP_URL)
    channel = await listener.channel()
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="#")
    engine = make_engine(outbox_database)
    sessions = make_sessionmaker(engine)
    relay = OutboxRelay(database_url=outbox_database, amqp_url=f"amqp://guest:guest@127.0.0.1:{link.port}/",
                        exchange=exchange_name, source="test", poll_interval=0.2, confirm_timeout=2.0)
    await relay.start()
    first = [CloudEvent(source="test", type="record.created", corralaccount=1, data={}) for _ in range(3)]
    later = [CloudEvent(source="test", type="record.updated", corralaccount=1, data={}) for _ in range(3)]
    try:
        async with transaction(sessions) as session:
            await add_events(session, first)
        assert await collect(queue, {e.id for e in first}, timeout=20) >= {e.id for e in first}

        link.stall()
        async with transaction(sessions) as session:
            await add_events(session, later)
        assert await collect(queue, {e.id for e in later}, timeout=30) >= {e.id for e in later}
    finally:
        await relay.stop()
        await link.down()
        await exchange.delete()
        await listener.close()
        await engine.dispose()


async def test_no_event_is_lost_while_the_broker_is_down(outbox_database: str) -> None:
    exchange_name = f"corral.test.{uuid.uuid4().hex[:8]}"
    link = BrokerLink()
    await link.up()
    listener = await aio_pika.connect(DEFAULT_AMQP_URL)
    channel = await listener.channel()
    exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="#")

    engine = make_engine(outbox_database)
    sessions = make_sessionmaker(engine)
    relay = OutboxRelay(database_url=outbox_database, amqp_url=f"amqp://guest:guest@127.0.0.1:{link.port}/",
                        exchange=exchange_name, source="test", poll_interval=0.2)
    await relay.start()
    sent: set[str] = set()

    async def write(n: int, event_type: str = "record.created") -> None:
        for _ in range(n):
            event = CloudEvent(source="test", type=event_type, corralaccount=1, data={})
            async with transaction(sessions) as session:
                await add_event(session, event)
            sent.add(event.id)

    try:
        await write(5)
        before_outage = await collect(queue, set(sent), timeout=20)
        assert before_outage >= sent

        await link.down()  # the broker is gone while records keep being written
        await write(20)
        batch = [CloudEvent(source="test", type="record.updated", corralaccount=1, data={"i": i}) for i in range(50)]
        async with transaction(sessions) as session:
            await add_events(session, batch)
        sent.update(e.id for e in batch)
        with contextlib.suppress(RuntimeError):
            async with transaction(sessions) as session:
                await add_event(session, CloudEvent(source="test", type="record.created", corralaccount=1,
                                                    id="rolled-back"))
                raise RuntimeError("the change is rolled back")
        await asyncio.sleep(1.5)

        await link.up()  # the broker is back on the same port
        received = before_outage | await collect(queue, sent - before_outage, timeout=30)
        assert received >= sent, f"lost {len(sent - received)} of {len(sent)} events"
        assert "rolled-back" not in received
        # Rows leave the outbox only once confirmed; a publish cut off mid-outage is retried (at least once).
        from sqlalchemy import text

        pending = -1
        for _ in range(100):
            async with engine.connect() as conn:
                pending = (await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
            if pending == 0:
                break
            await asyncio.sleep(0.3)
        assert pending == 0
    finally:
        await relay.stop()
        await link.down()
        await exchange.delete()
        await listener.close()
        await engine.dispose()

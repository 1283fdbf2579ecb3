"""Shared steps of the merge tests: records made through records-svc, events read from RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import httpx
import orjson

from crm_common.settings import DEFAULT_AMQP_URL


async def make(records: httpx.AsyncClient, object_type: str, **props: str) -> str:
    response = await records.post(f"/crm/v3/objects/{object_type}", json={"properties": props})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def set_by(records: httpx.AsyncClient, object_type: str, record_id: str, source_type: str,
                 **props: str) -> None:
    """Write values as a given history source (ANALYTICS for tracked values, as a tracking integration would)."""
    response = await records.post(f"/internal/v1/records/{object_type}/bulk-upsert", json={
        "operation": "UPDATE", "idProperty": "hs_object_id", "sourceType": source_type,
        "rows": [{"ref": 1, "id": record_id, "properties": props}]})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] != "ERROR", response.text


async def read(records: httpx.AsyncClient, object_type: str, record_id: str, *props: str) -> dict[str, Any]:
    response = await records.get(f"/crm/v3/objects/{object_type}/{record_id}", params={"properties": ",".join(props)})
    assert response.status_code == 200, response.text
    return response.json()


async def merge(merges: httpx.AsyncClient, object_type: str, primary: str, secondary: str,
                **keep: str) -> httpx.Response:
    body: dict[str, Any] = {"primaryObjectId": primary, "objectIdToMerge": secondary}
    if keep:
        body["propertiesToKeep"] = keep
    return await merges.post(f"/crm/v3/objects/{object_type}/merge", json=body)


@asynccontextmanager
async def subscribed(routing_key: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """An exclusive queue bound to the events exchange, declared before the action under test."""
    connection = await aio_pika.connect_robust(DEFAULT_AMQP_URL)
    try:
        channel = await connection.channel()
        exchange = await channel.declare_exchange("corral.events", aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=routing_key)
        yield queue
    finally:
        await connection.close()


async def next_event(queue: aio_pika.abc.AbstractQueue, match: dict[str, str], timeout: float = 20) -> dict[str, Any]:
    """The first event whose data contains `match` (other tests' events may share the exchange)."""

    async def wait() -> dict[str, Any]:
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    payload = orjson.loads(message.body)
                    for event in payload if isinstance(payload, list) else [payload]:
                        if all(event.get("data", {}).get(k) == v for k, v in match.items()):
                            return event
        raise AssertionError("queue closed")

    return await asyncio.wait_for(wait(), timeout)

"""Shared steps of the merge tests: records made through records-svc, events read from RabbitMQ."""

from __future__ import annotations

import asyncio
import random
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


# --- duplicate suggestions ------------------------------------------------------------------------

FIRST = ["ada", "grace", "alan", "edsger", "barbara", "donald", "john", "margaret", "ken", "dennis", "frances",
         "katherine", "niklaus", "tony", "leslie", "radia", "shafi", "sophie", "tim", "vint", "robert", "william",
         "elizabeth", "james", "mary", "peter", "susan", "thomas", "linda", "richard"]
LAST = ["lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "backus", "hamilton", "thompson", "ritchie",
        "allen", "johnson", "wirth", "hoare", "lamport", "perlman", "goldwasser", "wilson", "berners", "cerf", "smith",
        "brown", "jones", "miller", "davis", "garcia", "wilson", "taylor", "clark", "lewis"]
CITIES = ["london", "paris", "berlin", "madrid", "rome", "vienna", "oslo", "dublin"]


def synthetic_contacts(n: int, duplicates: int, seed: int = 7) -> tuple[list[dict[str, str]], set[tuple[int, int]]]:
    """n distinct people, then `duplicates` of them again with a typo, a nickname or another phone format."""
    rng = random.Random(seed)
    people = []
    for i in range(n):
        people.append({"firstname": rng.choice(FIRST), "lastname": rng.choice(LAST),
                       "email": f"p{i}@example{i % 7}.com", "phone": f"+1 415 555 {i:04d}",
                       "city": rng.choice(CITIES), "zip": f"{rng.randrange(10000, 99999)}",
                       "date_of_birth": f"19{rng.randrange(40, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(0, 9)}"})
    truth = set()
    for k in range(duplicates):
        original = people[k * 3]
        copy = dict(original)
        match k % 4:
            # Emails are unique per account: a duplicate has another address or none.
            case 0:
                copy["lastname"] = copy["lastname"][:-1] + "x"
                copy["email"] = ""
            case 1:
                copy["firstname"] = {"william": "bill", "robert": "bob"}.get(copy["firstname"], copy["firstname"])
                copy["phone"] = copy["phone"].replace("+1 ", "(").replace(" 555 ", ") 555-")
                copy["email"] = ""
            case 2:
                copy["firstname"], copy["lastname"] = copy["lastname"], copy["firstname"]
                copy["email"] = f"{copy['lastname']}.{k}@elsewhere.org"
            case 3:
                copy["email"] = copy["email"].split("@")[0] + "@personal.net"
                copy["zip"] = ""
        people.append(copy)
        truth.add((k * 3, len(people) - 1))
    return people, truth


async def seed(records: httpx.AsyncClient, object_type: str, rows: list[dict[str, str]]) -> list[str]:
    """Create the rows through records-svc's bulk path; their ids in order."""
    response = await records.post(f"/internal/v1/records/{object_type}/bulk-upsert", json={
        "operation": "CREATE", "idProperty": None,
        "rows": [{"ref": i, "properties": {k: v for k, v in row.items() if v}} for i, row in enumerate(rows)]})
    assert response.status_code == 200, response.text
    results = sorted(response.json()["results"], key=lambda r: r["ref"])
    assert all(r["status"] == "CREATED" for r in results), [r for r in results if r["status"] != "CREATED"][:3]
    return [r["id"] for r in results]


async def scanned(merges: httpx.AsyncClient, object_type: str, timeout: float = 120) -> dict[str, Any]:
    """Start a scan and wait for it to finish."""
    response = await merges.post("/corral/v1/duplicates/jobs", json={"objectType": object_type})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] in ("PENDING", "RUNNING")
    deadline = asyncio.get_running_loop().time() + timeout
    while job["status"] in ("PENDING", "RUNNING"):
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.3)
        job = (await merges.get(f"/corral/v1/duplicates/jobs/{job['id']}")).json()
    assert job["status"] == "COMPLETE", job
    return job


async def suggestions(merges: httpx.AsyncClient, object_type: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params = {"objectType": object_type, "limit": 100, **({"after": after} if after else {})}
        page = (await merges.get("/corral/v1/duplicates", params=params)).json()
        out += page["results"]
        if not page.get("paging"):
            return out
        after = page["paging"]["next"]["after"]

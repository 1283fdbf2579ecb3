"""Helpers the sync-svc tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

SALESFORCE = "https://emu.my.salesforce.com"
CLIENT = {"loginUrl": SALESFORCE, "flow": "client_credentials", "clientId": "corral-emulator",
          "clientSecret": "corral-emulator-secret"}


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, every: float = 0.1) -> Any:
    """The check's first truthy answer (events travel through RabbitMQ, so the queue fills a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(every)


async def connect_and_start(sync: httpx.AsyncClient, *objects: tuple[str, str]) -> dict[str, Any]:
    connected = await sync.put("/corral/v1/salesforce/connection", json=CLIENT)
    assert connected.status_code == 200, connected.text
    for object_type, salesforce_object in objects:
        enabled = await sync.put(f"/corral/v1/salesforce/objects/{object_type}",
                                 json={"salesforceObject": salesforce_object, "enabled": True})
        assert enabled.status_code == 200, enabled.text
    started = await sync.post("/corral/v1/salesforce/sync/start")
    assert started.status_code == 200, started.text
    return started.json()


async def queued(sync: httpx.AsyncClient) -> int:
    return (await sync.get("/corral/v1/salesforce/sync/status")).json()["queuedChanges"]


async def wait_queued(sync: httpx.AsyncClient, count: int = 1) -> None:
    """Until the consumer has queued `count` records (their events travel through RabbitMQ)."""

    async def enough() -> bool:
        return await queued(sync) >= count

    await eventually(enough)


async def run(sync: httpx.AsyncClient) -> dict[str, Any]:
    response = await sync.post("/corral/v1/salesforce/sync/run")
    assert response.status_code == 200, response.text
    return response.json()


async def login(salesforce: httpx.AsyncClient) -> None:
    token = (await salesforce.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT["clientId"],
        "client_secret": CLIENT["clientSecret"]})).json()["access_token"]
    salesforce.headers["Authorization"] = f"Bearer {token}"


async def sf_query(salesforce: httpx.AsyncClient, soql: str) -> list[dict[str, Any]]:
    path = "/services/data/v60.0/queryAll" if "IsDeleted" in soql else "/services/data/v60.0/query"
    response = await salesforce.get(path, params={"q": soql})
    if response.status_code == 401:  # a test ended every session
        await login(salesforce)
        response = await salesforce.get(path, params={"q": soql})
    assert response.status_code == 200, response.text
    records = response.json()["records"]
    for record in records:
        record.pop("attributes", None)
    return records


async def admin(salesforce: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    response = await salesforce.request(method, f"/__emulator__{path}", **kw)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def api_calls(salesforce: httpx.AsyncClient) -> int:
    return (await admin(salesforce, "GET", "/api-usage"))["total"]

"""Fixtures: an in-process emulator (httpx.ASGITransport) and a real https server for unmodified clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from salesforce_emulator.app import create_app
from salesforce_emulator.org import Org
from salesforce_emulator.settings import EmulatorSettings
from salesforce_emulator.tls import write_self_signed_certificate

CLIENT_ID = "corral-emulator"
CLIENT_SECRET = "corral-emulator-secret"
BASE_URL = "https://emu.my.salesforce.com"
API = "/services/data/v60.0"


class SalesforceApi:
    """A thin authenticated client for the in-process app; paths are relative to /services/data/v60.0."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    async def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                      **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("/services/") else API + path
        return await self.client.request(method, url, headers=self.headers(headers), **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def query(self, soql: str) -> httpx.Response:
        return await self.get("/query", params={"q": soql})

    async def create(self, sobject: str, fields: dict[str, Any]) -> str:
        response = await self.post(f"/sobjects/{sobject}", json=fields)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, "/__emulator__" + path, **kwargs)
        assert response.status_code < 300, response.text
        return response


@pytest.fixture
def emulator_app() -> FastAPI:
    return create_app(EmulatorSettings(enable_admin=True, page_size=2))


@pytest.fixture
def org(emulator_app: FastAPI) -> Org:
    return emulator_app.state.org


@pytest.fixture
async def http_client(emulator_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url=BASE_URL) as client:
        yield client


async def fetch_token(client: httpx.AsyncClient) -> str:
    response = await client.post("/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
async def sf(http_client: httpx.AsyncClient) -> SalesforceApi:
    return SalesforceApi(http_client, await fetch_token(http_client))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveEmulator:
    base_url: str
    port: int
    certificate: Path
    app: FastAPI

    @property
    def org(self) -> Org:
        return self.app.state.org


@pytest.fixture(scope="session")
def live_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEmulator]:
    """A real uvicorn https server in a background thread, with a certificate made for this run."""
    certificate, key = write_self_signed_certificate(tmp_path_factory.mktemp("sfemu-tls"))
    port = free_port()
    app = create_app(EmulatorSettings(enable_admin=True, page_size=2))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ssl_certfile=str(certificate),
                                           ssl_keyfile=str(key), log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("emulator did not start")
        time.sleep(0.02)
    yield LiveEmulator(f"https://127.0.0.1:{port}", port, certificate, app)
    server.should_exit = True
    server.force_exit = True  # don't wait for clients' idle keep-alive connections
    thread.join(timeout=5)

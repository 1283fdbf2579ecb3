"""Fixtures: a throwaway gateway database, four real echo services, and the gateway as a real process.

The echo services are built with `crm_common.app.create_service_app`, so they verify the signed
`X-Corral-Auth` header exactly as the real services do; they answer with what they received.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from corral_gateway.scopes import ALL_SCOPES
from corral_gateway.settings import GATEWAY_DIR
from corral_gateway.tokens import TokenRecord, create_token
from crm_common.app import create_service_app
from crm_common.db import drop_database, ensure_database, make_engine, prepare_database
from crm_common.settings import DEFAULT_PG_URL, BaseServiceSettings
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

SECRET = f"gateway-test-secret-{uuid.uuid4().hex}"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
RUN_ID = uuid.uuid4().hex[:8]
BACKENDS = ("records", "imports", "merges", "sync")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- echo services --------------------------------------------------------------------------------

class SharedPaging(BaseModel):
    after: str


def echo_router(service: str) -> APIRouter:
    router = APIRouter()

    if service == "imports":  # a real route: counts the streamed body
        @router.post("/crm/v3/imports")
        async def start_import(request: Request) -> dict[str, Any]:
            count, crc = 0, 0
            async for chunk in request.stream():
                count += len(chunk)
                crc = zlib.crc32(chunk, crc)
            return {"service": service, "bytes": count, "crc": crc}

    @router.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                      include_in_schema=False)
    async def echo(request: Request, path: str) -> JSONResponse:
        body = await request.body()
        params = request.query_params
        if "sleep" in params:
            await asyncio.sleep(float(params["sleep"]))
        if "raise" in params:
            raise RuntimeError("a bug in the service")
        headers = {"location": params["location"]} if "location" in params else {}
        if "retry_after" in params:
            headers["retry-after"] = params["retry_after"]
        return JSONResponse(
            {
                "service": service,
                "method": request.method,
                "path": request.scope["path"],
                "query": request.scope["query_string"].decode(),
                "auth": request.state.auth.model_dump(),
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            },
            status_code=int(params.get("status", 200)),
            headers=headers,
        )

    # Typed routes after the catch-all: never reached, they only shape the OpenAPI document.
    if service == "records":
        class Thing(BaseModel):  # same name as merges' Thing, different body: must be prefixed
            id: str
            properties: dict[str, str]

        @router.get("/crm/v3/objects/{objectType}", response_model=Thing)
        async def list_objects(objectType: str) -> Any: ...

        @router.get("/crm/v3/objects/{objectType}/paging", response_model=SharedPaging)
        async def paging(objectType: str) -> Any: ...

        @router.post("/internal/records/apply-merge")
        async def apply_merge() -> dict[str, str]: ...

        @router.post("/crm/v3/objects/{objectType}/merge")
        async def shadowed_merge(objectType: str) -> dict[str, str]: ...
    elif service == "merges":
        class Thing(BaseModel):  # type: ignore[no-redef]
            id: str
            mergedIds: list[str]

        @router.post("/crm/v3/objects/{objectType}/merge", response_model=Thing)
        async def merge(objectType: str) -> Any: ...

        @router.get("/corral/v1/merges/{mergeId}", response_model=SharedPaging)
        async def get_merge(mergeId: str) -> Any: ...

        @router.get("/internal/merges/plan")
        async def plan() -> dict[str, str]: ...
    elif service == "sync":
        @router.get("/corral/v1/sync/connections")
        async def connections() -> list[str]: ...

    return router


def echo_app(service: str, database_url: str) -> FastAPI:
    settings = BaseServiceSettings(
        service_name=f"{service}-echo", database_url=database_url, internal_secret=SECRET,
        run_outbox_relay=False, run_consumers=False, log_json=True, log_level="WARNING",
    )
    return create_service_app(settings=settings, title=f"{service} echo", description=f"{service} echo",
                              routers=[echo_router(service)])


class ThreadServer:
    """uvicorn in a background thread: a real HTTP server, same process (so tests can inspect it)."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("echo service did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---- databases ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
async def gateway_db_url() -> AsyncIterator[str]:
    url = f"{DEFAULT_PG_URL}/corral_gateway_test_{WORKER}_{RUN_ID}"
    await prepare_database(GATEWAY_DIR, url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def upstream_db_url() -> AsyncIterator[str]:
    # The echo services need only a database that answers `SELECT 1` for their /readyz.
    url = f"{DEFAULT_PG_URL}/corral_gateway_test_up_{WORKER}_{RUN_ID}"
    await ensure_database(url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def engine(gateway_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(gateway_db_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def upstreams(upstream_db_url: str) -> Iterator[dict[str, ThreadServer]]:
    servers = {name: ThreadServer(echo_app(name, upstream_db_url)) for name in BACKENDS}
    for server in servers.values():
        server.start()
    yield servers
    for server in servers.values():  # shut down together: each waits for its broker connection to close
        server.server.should_exit = True
    for server in servers.values():
        server.stop()


# ---- the gateway, as a real process ---------------------------------------------------------------

@dataclass
class GatewayProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    metrics_url: str = ""

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


def start_gateway(tmp: Path, name: str, database_url: str, backends: dict[str, str],
                  **extra_env: str) -> GatewayProcess:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_METRICS_PORT": str(metrics_port),
        "GATEWAY_DATABASE_URL": database_url,
        "CORRAL_INTERNAL_SECRET": SECRET,
        "CORRAL_LOG_JSON": "true",
        "CORRAL_LOG_LEVEL": "INFO",
        "GATEWAY_TOKEN_CACHE_TTL_SECONDS": "1",
        **{f"GATEWAY_{k.upper()}_URL": v for k, v in backends.items()},
        **extra_env,
    }
    log_path = tmp / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-c", "from corral_gateway.main import run; run()"],
        env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"gateway did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return GatewayProcess(url=url, process=process, log_path=log_path, env=env,
                          metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")


def stop_gateway(gateway: GatewayProcess) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        gateway.process.kill()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, gateway_db_url: str,
            upstreams: dict[str, ThreadServer]) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path_factory.mktemp("gateway"), "gateway", gateway_db_url,
                       {name: server.url for name, server in upstreams.items()})
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="session")
def degraded_gateway(tmp_path_factory: pytest.TempPathFactory, gateway_db_url: str,
                     upstreams: dict[str, ThreadServer]) -> Iterator[GatewayProcess]:
    """Same backends, except sync-svc is down (nothing listens), and a short upstream read timeout."""
    backends = {name: server.url for name, server in upstreams.items()}
    backends["sync"] = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(tmp_path_factory.mktemp("degraded"), "degraded", gateway_db_url, backends,
                       GATEWAY_READ_TIMEOUT="0.5")
    yield gw
    stop_gateway(gw)


@pytest.fixture(scope="session")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@dataclass
class Token:
    value: str
    record: TokenRecord
    account: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


@pytest.fixture
def make_token(engine: AsyncEngine):  # type: ignore[no-untyped-def]
    """Each call: a fresh account (so tests never share rate-limit state) and a token on it."""

    async def make(*, scopes: list[str] | None = None, rate_limit: int | None = None,
                   daily_limit: int | None = None, account: str | None = None) -> Token:
        account = account or f"acct-{uuid.uuid4().hex[:12]}"
        value, record = await create_token(
            engine, account=account, scopes=list(ALL_SCOPES) if scopes is None else scopes,
            rate_limit_per_10s=rate_limit, daily_limit=daily_limit,
        )
        return Token(value=value, record=record, account=account)

    return make

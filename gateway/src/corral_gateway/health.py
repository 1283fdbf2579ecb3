"""`/livez` and `/readyz`: ready only when the gateway's database and every backend's `/readyz` answer."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import JSONResponse

from corral_gateway.runtime import GatewayRuntime

router = APIRouter(include_in_schema=False)


@router.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


async def _check_database(runtime: GatewayRuntime) -> str:
    try:
        async with asyncio.timeout(runtime.settings.readyz_timeout):
            async with runtime.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"unavailable: {exc.__class__.__name__}"


async def _check_backend(runtime: GatewayRuntime, base_url: str) -> str:
    try:
        response = await runtime.client.get(f"{base_url.rstrip('/')}/readyz",
                                            timeout=runtime.settings.readyz_timeout)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"unavailable: {exc.__class__.__name__}"
    return "ok" if response.status_code == 200 else f"not ready: HTTP {response.status_code}"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    runtime: GatewayRuntime = request.app.state.runtime
    backends = runtime.settings.backend_urls()
    results = await asyncio.gather(_check_database(runtime),
                                   *(_check_backend(runtime, url) for url in backends.values()))
    checks = dict(zip(["database", *backends], results, strict=True))
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                          status_code=200 if ready else 503)

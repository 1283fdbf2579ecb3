"""Liveness and readiness: `/readyz` answers 200 only when the database and the broker answer."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy import text

from crm_common.responses import FastJSONResponse

health_router = APIRouter(include_in_schema=False)


@health_router.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@health_router.get("/readyz")
async def readyz(request: Request) -> FastJSONResponse:
    runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {exc.__class__.__name__}"
    broker = runtime.broker
    checks["broker"] = "ok" if broker is not None and not broker.is_closed else "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return FastJSONResponse({"status": "ready" if ready else "not ready", "checks": checks},
                          status_code=200 if ready else 503)

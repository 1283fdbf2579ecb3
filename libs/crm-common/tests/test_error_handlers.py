"""A request that loses a race with a concurrent write answers 409 (retry), never a 500."""

from __future__ import annotations

import asyncpg
import httpx
from crm_common.errors import install_error_handlers, is_transient_conflict
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/write")
    async def write() -> None:
        raise exc

    return app


async def answer(exc: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.get("/write")


async def test_deadlocks_and_serialization_failures_answer_409_with_retry_after() -> None:
    deadlock = asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
    wrapped = DBAPIError("INSERT ...", {}, asyncpg.exceptions.SerializationError("could not serialize"))
    for exc in (deadlock, wrapped):
        assert is_transient_conflict(exc)
        response = await answer(exc)
        assert response.status_code == 409, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["category"] == "CONFLICT" and "retry" in response.json()["message"]


async def test_other_errors_stay_internal_errors() -> None:
    other = asyncpg.exceptions.UniqueViolationError("duplicate key")
    assert not is_transient_conflict(other)
    response = await answer(other)
    assert response.status_code == 500 and response.json()["category"] == "INTERNAL_ERROR"

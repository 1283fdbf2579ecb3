"""Annotated dependencies: the request's unit of work and the caller's write source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from crm_common.auth import Auth
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request boundary: commits when the route returns, rolls back when it raises."""
    sessionmaker = request.app.state.runtime.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


# scope="function": commit before the response is sent, so a client reading right after a write sees it
# (FastAPI otherwise runs the exit of a yield dependency after the response).
Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]

__all__ = ["Auth", "Session"]

"""Annotated dependencies: the request's unit of work and the caller's auth context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.auth import Auth


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request boundary: commits when the route returns, rolls back when it raises."""
    sessionmaker = request.app.state.runtime.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


Session = Annotated[AsyncSession, Depends(unit_of_work)]

__all__ = ["Auth", "Session"]

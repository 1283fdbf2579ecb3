"""FastAPI dependencies every service shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """The request boundary: commits when the route returns, rolls back when it raises."""
    sessionmaker = request.app.state.runtime.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


# scope="function": the transaction commits before the response is sent, so a client that reads right
# after a write (the SDK polling an import it just started) sees it. FastAPI's default ("request") runs the
# end of a yield dependency after the response has gone out.
Session = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]

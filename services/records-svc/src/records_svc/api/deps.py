"""Annotated dependencies (the request's unit of work, the caller's verified auth context), and the unit of
work of writes that may lose a race with a concurrent writer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from crm_common.auth import Auth
from crm_common.deps import Session
from crm_common.errors import HubSpotError, is_transient_conflict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from records_svc.bulk import UniqueRace
from records_svc.metrics import WRITE_RETRIES

__all__ = ["Auth", "Session", "retrying_races"]

RACE_ATTEMPTS = 4
T = TypeVar("T")


async def retrying_races(sessionmaker: async_sessionmaker[AsyncSession],
                         work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work` in a transaction of its own, run again when it lost a race with a concurrent writer.

    Two writers of the same new unique values (two imports, parallel batch upserts of one list) race:
    the loser finds the value claimed between its lookup and its insert (UniqueRace), or Postgres aborts
    it for a deadlock or a serialization failure. Run again, it sees the winner's records and updates
    them. Only when it keeps losing does the caller get 409 with Retry-After.
    """
    for attempt in range(RACE_ATTEMPTS):
        try:
            async with sessionmaker() as session, session.begin():
                return await work(session)
        except UniqueRace:
            cause, lost = "unique_race", "Unique values kept changing under this batch"
        except Exception as exc:
            if not is_transient_conflict(exc):
                raise
            cause, lost = "lock_conflict", "This batch kept colliding with concurrent writes of the same records"
        last = attempt == RACE_ATTEMPTS - 1
        WRITE_RETRIES.labels(cause, "gave_up" if last else "retried").inc()
        if last:
            raise HubSpotError(409, f"{lost}; nothing of it was written: retry it", category="CONFLICT",
                               headers={"Retry-After": "1"})
        # Jitter: losers that all retry at the same instant would collide again.
        await asyncio.sleep(0.05 * (attempt + 1) * (0.5 + random.random()))
    raise AssertionError("unreachable")

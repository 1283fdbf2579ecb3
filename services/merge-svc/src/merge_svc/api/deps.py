"""Annotated dependencies: lifespan-built clients and the database, handed to routes."""

from __future__ import annotations

from typing import Annotated

from crm_common.auth import Auth
from crm_common.contracts.records import RecordsClient
from crm_common.contracts.sync import SyncClient
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def _records(request: Request) -> RecordsClient:
    return request.app.state.runtime.extras["records"]


def _sync(request: Request) -> SyncClient:
    return request.app.state.runtime.extras["sync"]


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.runtime.sessionmaker


Records = Annotated[RecordsClient, Depends(_records)]
Sync = Annotated[SyncClient, Depends(_sync)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]

__all__ = ["Auth", "Records", "Sessions", "Sync"]

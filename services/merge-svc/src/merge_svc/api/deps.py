"""Annotated dependencies: lifespan-built clients and the database, handed to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from crm_common.auth import Auth, AuthContext, require_scope
from crm_common.contracts.records import RecordsClient
from crm_common.contracts.sync import SyncClient
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from merge_svc.duplicates.scans import ScanWorker
    from merge_svc.reconcile import PendingMergeReconciler


@dataclass
class MergeResources:
    records: RecordsClient
    sync: SyncClient
    reconciler: PendingMergeReconciler | None = None
    scans: ScanWorker | None = None


def resources_of(request: Request) -> MergeResources:
    return request.app.state.runtime.resources


def _records(request: Request) -> RecordsClient:
    return resources_of(request).records


def _sync(request: Request) -> SyncClient:
    return resources_of(request).sync


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.runtime.sessionmaker


# Corral's merge and duplicate routes. HubSpot's merge endpoint (/crm/v3/objects/{type}/merge) takes the object
# type's scope, which the gateway checks.
MERGES_SCOPE = "corral.merges"


def _merges_auth(auth: Auth) -> AuthContext:
    require_scope(auth, MERGES_SCOPE)
    return auth


MergesAuth = Annotated[AuthContext, Depends(_merges_auth)]
Records = Annotated[RecordsClient, Depends(_records)]
Sync = Annotated[SyncClient, Depends(_sync)]
Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]

__all__ = ["MERGES_SCOPE", "Auth", "MergeResources", "MergesAuth", "Records", "Sessions", "Sync", "resources_of"]

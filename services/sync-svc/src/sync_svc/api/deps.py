"""Annotated dependencies: the lifespan-built resources, the database and the scopes a route needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from crm_common.auth import AuthContext, require_auth, require_scope
from crm_common.deps import Session
from fastapi import Depends, Request

from sync_svc.connector import Connector

if TYPE_CHECKING:
    from crm_common.contracts.records import RecordsClient

    from sync_svc.engine.cycle import SyncEngine

READ_SCOPE = "corral.sync.read"
WRITE_SCOPE = "corral.sync.write"
# Tokens made before the split hold `corral.sync`, which grants both.
LEGACY_SCOPE = "corral.sync"


@dataclass
class SyncResources:
    connector: Connector
    records: RecordsClient
    engine: SyncEngine


def _resources(request: Request) -> SyncResources:
    return request.app.state.runtime.resources


def _reader(auth: Annotated[AuthContext, Depends(require_auth)]) -> AuthContext:
    if not auth.has_scope(LEGACY_SCOPE):
        require_scope(auth, READ_SCOPE)
    return auth


def _writer(auth: Annotated[AuthContext, Depends(require_auth)]) -> AuthContext:
    if not auth.has_scope(LEGACY_SCOPE):
        require_scope(auth, WRITE_SCOPE)
    return auth


Resources = Annotated[SyncResources, Depends(_resources)]
Reader = Annotated[AuthContext, Depends(_reader)]
Writer = Annotated[AuthContext, Depends(_writer)]

__all__ = ["READ_SCOPE", "WRITE_SCOPE", "Reader", "Resources", "Session", "SyncResources", "Writer"]

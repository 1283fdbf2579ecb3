"""Internal routes for other services (never exposed by the gateway)."""

from __future__ import annotations

from typing import Any

from crm_common.auth import Auth
from crm_common.contracts.sync import SyncStatus
from crm_common.errors import error_responses
from fastapi import APIRouter

router = APIRouter(prefix="/internal/v1", tags=["Internal"])


@router.get("/sync/status", response_model=SyncStatus, responses=error_responses(400, 401),
            summary="Whether Salesforce sync is on for an object type (merge-svc asks before merging)")
async def sync_status(objectType: str, auth: Auth) -> Any:
    # No Salesforce connection exists yet, so nothing syncs; the sync engine answers from its
    # connection and object-mapping settings once it lands.
    del auth
    return {"objectType": objectType, "syncEnabled": False}

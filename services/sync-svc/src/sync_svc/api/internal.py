"""Internal routes for other services (never exposed by the gateway)."""

from __future__ import annotations

from typing import Any

from crm_common.auth import Auth
from crm_common.contracts.sync import SyncStatus
from crm_common.errors import error_responses
from fastapi import APIRouter

from sync_svc.api.deps import Session
from sync_svc.domain.objects import sync_object_type
from sync_svc.repositories import mappings as mapping_repo

router = APIRouter(prefix="/internal/v1", tags=["Internal"])


@router.get("/sync/status", response_model=SyncStatus, responses=error_responses(400, 401),
            summary="Whether Salesforce sync is on for an object type (merge-svc asks before merging)")
async def sync_status(objectType: str, auth: Auth, session: Session) -> Any:
    """On = the object is enabled on a connected account whose sync has started (running or paused): a merge of
    companies then would leave Salesforce accounts half-linked, so merge-svc refuses it."""
    object_type = sync_object_type(objectType)
    enabled = object_type is not None and await mapping_repo.object_enabled(session, auth.account_id,
                                                                            object_type.name)
    return {"objectType": objectType, "syncEnabled": enabled}

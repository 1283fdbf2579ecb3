"""sync-svc's internal API: the models of its routes and the client other services call it with."""

from __future__ import annotations

from pydantic import BaseModel

from crm_common.contracts.base import InternalClient

# --- GET /internal/v1/sync/status?objectType= ------------------------------------------------------------


class SyncStatus(BaseModel):
    objectType: str
    syncEnabled: bool


class SyncClient(InternalClient):
    service = "sync-svc"

    async def sync_status(self, account_id: int, object_type: str) -> SyncStatus:
        response = await self.call("GET", "/internal/v1/sync/status", account_id=account_id, what="sync status",
                                   params={"objectType": object_type})
        return SyncStatus.model_validate_json(response.content)


__all__ = ["SyncClient", "SyncStatus"]

"""merge-svc's internal API: the duplicate check other services ask before creating a record."""

from __future__ import annotations

from pydantic import BaseModel, Field

from crm_common.contracts.base import InternalClient

# --- POST /internal/v1/duplicates/check ----------------------------------------------------------------


class DuplicateCheckRequest(BaseModel):
    objectType: str
    properties: dict[str, str | int | float | bool | None]
    minScore: float | None = Field(None, ge=0, le=1, description="Default: the account's threshold")


class DuplicateMatch(BaseModel):
    id: str
    score: float
    matchedOn: dict[str, str] = Field(description="Per compared property, how the two values matched")


class DuplicateCheckResponse(BaseModel):
    objectType: str
    threshold: float
    results: list[DuplicateMatch]


class MergesClient(InternalClient):
    service = "merge-svc"

    async def check_duplicates(self, account_id: int, request: DuplicateCheckRequest) -> DuplicateCheckResponse | None:
        """The likely existing duplicates, best first; None before the type's first duplicate scan (no model)."""
        response = await self.call("POST", "/internal/v1/duplicates/check", account_id=account_id,
                                   what="duplicate check", body=request, accept=frozenset({409}))
        if response.status_code == 409:
            return None
        return DuplicateCheckResponse.model_validate_json(response.content)


__all__ = ["DuplicateCheckRequest", "DuplicateCheckResponse", "DuplicateMatch", "MergesClient"]

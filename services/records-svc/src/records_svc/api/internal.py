"""Internal routes for other services (never exposed by the gateway)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from crm_common.errors import HubSpotError, error_responses
from records_svc.api.deps import Auth
from records_svc.bulk import BulkRow, UniqueRace, bulk_upsert
from records_svc.catalog import load_catalog, resolve_object_type

router = APIRouter(prefix="/internal/v1", tags=["Internal"])

MAX_BULK_ROWS = 20_000
UNIQUE_RACE_RETRIES = 3


class BulkRowInput(BaseModel):
    ref: int
    id: str | None = None
    properties: dict[str, str | int | float | bool | None]


class BulkUpsertRequest(BaseModel):
    operation: Literal["CREATE", "UPDATE", "UPSERT"] = "UPSERT"
    idProperty: str | None = None
    keepExisting: list[str] = Field(default_factory=list)
    sourceType: str = "IMPORT"
    sourceId: str | None = None
    operationId: str | None = None
    rows: list[BulkRowInput]


class BulkRowError(BaseModel):
    code: str
    message: str
    property: str | None = None
    value: str | None = None


class BulkRowResult(BaseModel):
    ref: int
    id: str | None
    status: Literal["CREATED", "UPDATED", "UNCHANGED", "ERROR"]
    errors: list[BulkRowError]


class BulkUpsertResponse(BaseModel):
    results: list[BulkRowResult]
    created: int
    updated: int
    unchanged: int
    failed: int


@router.post("/records/{objectType}/bulk-upsert", response_model=BulkUpsertResponse,
             responses=error_responses(400, 401), summary="Set-based upsert of many rows (imports)")
async def bulk_upsert_route(objectType: str, payload: BulkUpsertRequest, auth: Auth, request: Request) -> Any:
    if len(payload.rows) > MAX_BULK_ROWS:
        raise HubSpotError(400, f"At most {MAX_BULK_ROWS} rows per bulk call; got {len(payload.rows)}")
    rows = [BulkRow(ref=r.ref, id=r.id, properties=r.properties) for r in payload.rows]
    sessionmaker = request.app.state.runtime.sessionmaker
    for attempt in range(UNIQUE_RACE_RETRIES):
        try:
            async with sessionmaker() as session, session.begin():
                object_type = await resolve_object_type(session, auth.account_id, objectType)
                catalog = await load_catalog(session, auth.account_id, object_type)
                try:
                    results = await bulk_upsert(
                        session, account_id=auth.account_id, catalog=catalog, rows=rows,
                        operation=payload.operation, id_property=payload.idProperty,
                        keep_existing=payload.keepExisting, source_type=payload.sourceType,
                        source_id=payload.sourceId, operation_id=payload.operationId)
                except ValueError as exc:
                    raise HubSpotError(400, str(exc)) from None
            break
        except UniqueRace:
            if attempt == UNIQUE_RACE_RETRIES - 1:
                raise HubSpotError(409, "Unique values kept changing under this batch; retry it",
                                   category="CONFLICT") from None
    counts = {"CREATED": 0, "UPDATED": 0, "UNCHANGED": 0, "ERROR": 0}
    out = []
    for r in results:
        counts[r.status] += 1
        out.append({"ref": r.ref, "id": str(r.id) if r.id is not None else None, "status": r.status,
                    "errors": [e.__dict__ for e in r.errors]})
    return ORJSONResponse({"results": out, "created": counts["CREATED"], "updated": counts["UPDATED"],
                           "unchanged": counts["UNCHANGED"], "failed": counts["ERROR"]})

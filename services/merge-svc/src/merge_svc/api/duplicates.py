"""Duplicate suggestions (beyond HubSpot): matching settings, scan jobs, suggestions, dismissals, check before
create; and the internal check import-svc's capture path asks."""

from __future__ import annotations

from typing import Annotated, Any

from crm_common.contracts.merges import DuplicateCheckRequest, DuplicateCheckResponse
from crm_common.db import transaction
from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import parse_after, parse_id
from crm_common.responses import FastJSONResponse
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from merge_svc.api.deps import Auth, MergesAuth, Records, Sessions, resources_of
from merge_svc.domain.matching import Kind
from merge_svc.duplicates import service

router = APIRouter(prefix="/corral/v1/duplicates", tags=["Duplicates (Corral)"])
internal_router = APIRouter(prefix="/internal/v1/duplicates", tags=["Internal"])

ERRORS = error_responses(400, 401, 403, 404, 409, 429)
MAX_PAGE = 100


class MatchPropertyBody(BaseModel):
    name: str = Field(description="A property of the object type")
    kind: str = Field(description=f"What the property holds: {', '.join(k.value for k in Kind)}")


class SettingsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    properties: list[MatchPropertyBody] = Field(description="The properties compared, each with its kind")
    threshold: float = Field(0.9, description="Pairs at or above this match probability are suggested")


class SettingsView(SettingsInput):
    objectType: str
    objectTypeId: str
    isDefault: bool


class JobInput(BaseModel):
    objectType: str


class JobView(BaseModel):
    id: str
    objectType: str
    objectTypeId: str
    status: str = Field(description="PENDING, RUNNING, COMPLETE or FAILED")
    phase: str | None = Field(None, description="While running: READING, SCORING or CLUSTERING")
    progress: dict[str, Any] = Field(description="recordsRead, recordsTotal, candidatePairs, pairs, clusters, ...")
    error: str | None = None
    createdAt: str
    startedAt: str | None = None
    completedAt: str | None = None


class PairView(BaseModel):
    recordIds: list[str]
    score: float
    matchedOn: dict[str, str] = Field(description="Per compared property, how the two values matched")


class ClusterView(BaseModel):
    id: str
    objectType: str
    objectTypeId: str
    recordIds: list[str]
    score: float = Field(description="The weakest pair's match probability")
    pairs: list[PairView]


class ClusterPage(BaseModel):
    results: list[ClusterView]
    paging: dict[str, Any] | None = None


class DismissView(BaseModel):
    id: str
    dismissed: bool
    recordIds: list[str]


def _settings_view(object_type: service.ObjectTypeRef, settings: Any, is_default: bool) -> dict[str, Any]:
    return {"objectType": object_type.name, "objectTypeId": object_type.id, "isDefault": is_default,
            **settings.as_json()}


@router.get("/settings/{objectType}", response_model=SettingsView, responses=ERRORS,
            summary="The matching settings of an object type (the defaults until set)")
async def get_settings(objectType: str, auth: MergesAuth, records: Records, sessions: Sessions) -> Any:
    object_type = await service.resolve_type(account_id=auth.account_id, object_type=objectType, records=records)
    async with transaction(sessions) as session:
        settings, is_default = await service.current_settings(account_id=auth.account_id, object_type=object_type,
                                                              records=records, session=session)
    return FastJSONResponse(_settings_view(object_type, settings, is_default))


@router.put("/settings/{objectType}", response_model=SettingsView, responses=ERRORS,
            summary="Set the properties compared (with their kinds) and the threshold of an object type",
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": SettingsInput.model_json_schema(ref_template="#/components/schemas/{model}")}}}})
async def put_settings(objectType: str, auth: MergesAuth, records: Records, sessions: Sessions, request: Request) -> Any:
    try:
        body = await request.json()
    except ValueError:
        raise HubSpotError(400, "The body must be JSON", category="VALIDATION_ERROR") from None
    if not isinstance(body, dict):
        raise HubSpotError(400, "The body must be a JSON object", category="VALIDATION_ERROR")
    settings = service.parse_settings(body)
    object_type = await service.resolve_type(account_id=auth.account_id, object_type=objectType, records=records)
    async with transaction(sessions) as session:
        await service.put_settings(account_id=auth.account_id, object_type=object_type, settings=settings,
                                   records=records, session=session)
    return FastJSONResponse(_settings_view(object_type, settings, False))


@router.post("/jobs", status_code=202, response_model=JobView, responses=ERRORS,
             summary="Start a duplicate scan of an object type")
async def start_job(payload: JobInput, auth: MergesAuth, records: Records, sessions: Sessions, request: Request) -> Any:
    object_type = await service.resolve_type(account_id=auth.account_id, object_type=payload.objectType,
                                             records=records)
    async with transaction(sessions) as session:
        job = await service.start_scan(account_id=auth.account_id, object_type=object_type, records=records,
                                       session=session)
    worker = resources_of(request).scans
    if worker is not None:
        worker.wake()
    return FastJSONResponse(service.job_view(job), status_code=202)


@router.get("/jobs/{jobId}", response_model=JobView, responses=ERRORS, summary="A duplicate scan's state and progress")
async def get_job(jobId: str, auth: MergesAuth, sessions: Sessions) -> Any:
    async with transaction(sessions) as session:
        job = await service.repository.get_job(session, auth.account_id, _id(jobId, "jobId"))
    if job is None:
        raise HubSpotError(404, f"Duplicate scan {jobId} does not exist", category="OBJECT_NOT_FOUND")
    return FastJSONResponse(service.job_view(job))


@router.get("", response_model=ClusterPage, responses=ERRORS,
            summary="Duplicate suggestions: clusters of likely duplicates with the pairs and what matched")
async def list_suggestions(auth: MergesAuth, records: Records, sessions: Sessions, objectType: str,
                           minScore: Annotated[float, Query(ge=0, le=1)] = 0.0,
                           after: Annotated[str | None, Query()] = None,
                           limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20) -> Any:
    object_type = await service.resolve_type(account_id=auth.account_id, object_type=objectType, records=records)
    async with transaction(sessions) as session:
        page = await service.suggestions(account_id=auth.account_id, object_type=object_type, min_score=minScore,
                                         after=parse_after(after), limit=limit, session=session)
    return FastJSONResponse(page)


@router.post("/{suggestionId}/dismiss", response_model=DismissView, responses=ERRORS,
             summary="Dismiss a suggestion: not suggested again unless one of its records changes")
async def dismiss(suggestionId: str, auth: MergesAuth, sessions: Sessions) -> Any:
    async with transaction(sessions) as session:
        result = await service.dismiss(account_id=auth.account_id, cluster_id=_id(suggestionId, "suggestionId"),
                                       session=session)
    return FastJSONResponse(result)


async def _check(payload: DuplicateCheckRequest, account_id: int, records: Any, sessions: Any) -> dict[str, Any]:
    object_type = await service.resolve_type(account_id=account_id, object_type=payload.objectType, records=records)
    async with transaction(sessions) as session:
        return await service.check(account_id=account_id, object_type=object_type, properties=payload.properties,
                                   min_score=payload.minScore, session=session)


@router.post("/check", response_model=DuplicateCheckResponse, responses=ERRORS,
             summary="The likely existing duplicates of a record about to be created, with scores")
async def check(payload: DuplicateCheckRequest, auth: MergesAuth, records: Records, sessions: Sessions) -> Any:
    return FastJSONResponse(await _check(payload, auth.account_id, records, sessions))


@internal_router.post("/check", response_model=DuplicateCheckResponse, responses=error_responses(400, 401, 404, 409),
                      summary="Check before create, for other services (import-svc's capture path)")
async def internal_check(payload: DuplicateCheckRequest, auth: Auth, records: Records, sessions: Sessions) -> Any:
    return FastJSONResponse(await _check(payload, auth.account_id, records, sessions))


def _id(value: str, field: str) -> int:
    return parse_id(value, field=field)

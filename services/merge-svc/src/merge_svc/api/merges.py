"""Merge routes: HubSpot's `POST /crm/v3/objects/{type}/merge` and Corral's `/corral/v1/merges` (beyond)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from crm_common.db import transaction
from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import as_id, echo, parse_id
from crm_common.object_types import find_standard
from crm_common.responses import FastJSONResponse
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from merge_svc import repository, service
from merge_svc.api.deps import Auth, MergesAuth, Records, Sessions, Sync
from merge_svc.domain.rules import Strategy, rules_for
from merge_svc.metrics import measured_merge, measured_unmerge

hubspot_router = APIRouter(prefix="/crm/v3/objects", tags=["Merge"])
router = APIRouter(prefix="/corral/v1/merges", tags=["Merges (Corral)"])

ERRORS = error_responses(400, 401, 403, 404, 409, 414, 429, 502, 503, 504)
MAX_HISTORY = 500

Side = Literal["PRIMARY", "SECONDARY"]


class MergeInput(BaseModel):
    """HubSpot's PublicMergeInput, plus `propertiesToKeep` (beyond HubSpot)."""

    model_config = ConfigDict(extra="ignore")

    primaryObjectId: str | int
    objectIdToMerge: str | int
    propertiesToKeep: dict[str, Side] = Field(
        default_factory=dict,
        description="Beyond HubSpot: per property, which record's value to keep. Unnamed properties follow "
                    "the merge rules (the primary's value unless empty, with HubSpot's exceptions).")


class PreviewInput(MergeInput):
    objectType: str


class ClusterMergeInput(BaseModel):
    """Beyond HubSpot: merge a whole cluster of duplicates into one new record in one call."""

    model_config = ConfigDict(extra="ignore")

    objectType: str
    primaryObjectId: str | int
    objectIdsToMerge: list[str | int] = Field(min_length=1, max_length=99)
    propertiesToKeep: dict[str, str] = Field(
        default_factory=dict,
        description="Per property, the record whose value to keep: \"PRIMARY\" or one of objectIdsToMerge. "
                    "Unnamed properties follow the merge rules, applied to the records in the order given.")


class ClusterMergeResult(BaseModel):
    id: str
    mergeId: str
    mergesInvolved: int
    properties: dict[str, str | None]
    createdAt: str
    updatedAt: str
    archived: bool = False


class SimplePublicObject(BaseModel):
    id: str
    properties: dict[str, str | None]
    createdAt: str
    updatedAt: str
    archived: bool = False


class MergePreview(BaseModel):
    objectType: str
    objectTypeId: str
    primaryObjectId: str
    objectIdToMerge: str
    properties: dict[str, str]
    decisions: dict[str, str]
    createdAt: str | None = None
    mergesInvolved: int
    associations: int


class MergeView(BaseModel):
    id: str
    objectType: str
    objectTypeId: str
    status: Literal["PENDING", "APPLIED", "FAILED", "UNMERGED"]
    primaryObjectId: str
    objectIdToMerge: str
    objectIdsToMerge: list[str] = Field(default_factory=list, description="Every secondary (a cluster merge's all)")
    mergedObjectId: str | None
    mergedIds: list[str]
    propertiesToKeep: dict[str, str]
    properties: dict[str, str]
    decisions: dict[str, str]
    mergesInvolved: int
    error: str | None = None
    unmerge: dict[str, Any] | None = None
    createdAt: str
    appliedAt: str | None = None
    unmergedAt: str | None = None


class MergeList(BaseModel):
    results: list[MergeView]


class UnmergeResult(BaseModel):
    mergeId: str
    status: str
    primaryId: str
    secondaryId: str
    secondaryIds: list[str] = Field(default_factory=list)
    mergedId: str
    keptChanges: dict[str, Any]
    restoredAssociations: int = 0
    conflicts: list[dict[str, Any]]


class RuleView(BaseModel):
    property: str
    strategy: Strategy
    additional: str | None = None
    overridden: bool = False


class RuleList(BaseModel):
    objectTypeId: str
    results: list[RuleView]


class RuleInput(BaseModel):
    strategy: Strategy


def _request(object_type: str, payload: MergeInput) -> service.MergeRequest:
    return service.MergeRequest(object_type=object_type, primary_id=str(payload.primaryObjectId),
                                secondary_id=str(payload.objectIdToMerge),
                                properties_to_keep=dict(payload.propertiesToKeep))


@hubspot_router.post("/{objectType}/merge", response_model=SimplePublicObject, responses=ERRORS,
                     summary="Merge two records of the same object type")
async def merge_objects(objectType: str, payload: MergeInput, auth: Auth, records: Records, sync: Sync,
                        sessions: Sessions) -> Any:
    with measured_merge(objectType):
        record = await service.merge(account_id=auth.account_id, request=_request(objectType, payload),
                                     records=records, sync=sync, sessionmaker=sessions)
    return FastJSONResponse(record)


@router.post("/preview", response_model=MergePreview, responses=ERRORS,
             summary="The merged record a merge would produce, without applying it")
async def preview_merge(payload: PreviewInput, auth: MergesAuth, records: Records, sync: Sync, sessions: Sessions) -> Any:
    return FastJSONResponse(await service.preview(account_id=auth.account_id,
                                                request=_request(payload.objectType, payload),
                                                records=records, sync=sync, sessionmaker=sessions))


@router.post("/cluster", response_model=ClusterMergeResult, responses=ERRORS,
             summary="Merge a cluster of records into one new record (beyond HubSpot)")
async def merge_cluster(payload: ClusterMergeInput, auth: MergesAuth, records: Records, sync: Sync, sessions: Sessions) -> Any:
    request = service.ClusterMergeRequest(
        object_type=payload.objectType, primary_id=str(payload.primaryObjectId),
        secondary_ids=[str(i) for i in payload.objectIdsToMerge],
        properties_to_keep={k: str(v) for k, v in payload.propertiesToKeep.items()})
    with measured_merge(payload.objectType):
        result = await service.merge_cluster(account_id=auth.account_id, request=request, records=records, sync=sync,
                                             sessionmaker=sessions)
    return FastJSONResponse(result)


@router.get("/rules/{objectType}", response_model=RuleList, responses=ERRORS,
            summary="The merge rules of an object type, with this account's overrides")
async def list_rules(objectType: str, auth: MergesAuth, sessions: Sessions) -> Any:
    type_id = _type_id(objectType)
    async with transaction(sessions) as session:
        overrides = await repository.rule_overrides(session, auth.account_id, type_id)
    table = rules_for(type_id, {p: Strategy(s) for p, s in overrides.items()})
    return FastJSONResponse({"objectTypeId": type_id, "results": [
        {"property": r.property, "strategy": r.strategy.value, "additional": r.additional,
         "overridden": r.property in overrides} for r in table.values()]})


@router.put("/rules/{objectType}/{propertyName}", response_model=RuleView, responses=ERRORS,
            summary="Override the merge strategy of one property for this account")
async def put_rule(objectType: str, propertyName: str, payload: RuleInput, auth: MergesAuth, sessions: Sessions) -> Any:
    type_id = _type_id(objectType)
    if payload.strategy == Strategy.SECONDARY_TO_ADDITIONAL and propertyName not in rules_for(type_id):
        raise HubSpotError(400, f"{propertyName} has no additional-values property; SECONDARY_TO_ADDITIONAL "
                                "only applies to email (contacts) and domain (companies)")
    async with transaction(sessions) as session:
        await repository.put_rule(session, auth.account_id, type_id, propertyName, payload.strategy.value)
    rule = rules_for(type_id, {propertyName: payload.strategy})[propertyName]
    return FastJSONResponse({"property": propertyName, "strategy": rule.strategy.value,
                           "additional": rule.additional, "overridden": True})


@router.delete("/rules/{objectType}/{propertyName}", status_code=204, response_class=Response, responses=ERRORS,
               summary="Remove this account's override of one property's merge strategy")
async def delete_rule(objectType: str, propertyName: str, auth: MergesAuth, sessions: Sessions) -> Response:
    async with transaction(sessions) as session:
        await repository.delete_rule(session, auth.account_id, _type_id(objectType), propertyName)
    return Response(status_code=204)


@router.get("", response_model=MergeList, responses=ERRORS,
            summary="Merge history of a record: the merges it and the records it came from took part in")
async def list_merges(auth: MergesAuth, sessions: Sessions, recordId: str,
                      objectType: Annotated[str | None, Query()] = None,
                      limit: Annotated[int, Query(ge=1, le=MAX_HISTORY)] = 100) -> Any:
    record_id = parse_id(recordId, field="recordId", what="record id")
    type_id = _type_id(objectType) if objectType else None
    async with transaction(sessions) as session:
        rows = await repository.merges_of_record(session, auth.account_id, type_id, record_id, limit=limit)
    return FastJSONResponse({"results": [service.merge_view(r) for r in rows]})


@router.get("/{mergeId}", response_model=MergeView, responses=ERRORS, summary="One merge")
async def get_merge(mergeId: str, auth: MergesAuth, sessions: Sessions) -> Any:
    merge_id = parse_id(mergeId, field="mergeId", what="merge id")
    async with transaction(sessions) as session:
        row = await repository.get_merge(session, auth.account_id, merge_id)
    if row is None:
        raise HubSpotError(404, f"Merge {mergeId} does not exist", category="OBJECT_NOT_FOUND")
    return FastJSONResponse(service.merge_view(row))


@router.post("/{mergeId}/unmerge", response_model=UnmergeResult, responses=ERRORS,
             summary="Restore both original records of a merge, keeping later changes (beyond HubSpot)")
async def unmerge(mergeId: str, auth: MergesAuth, records: Records, sessions: Sessions) -> Any:
    merge_id = parse_id(mergeId, field="mergeId", what="merge id")
    with measured_unmerge():
        result = await service.unmerge(account_id=auth.account_id, merge_id=merge_id, records=records,
                                       sessionmaker=sessions)
    return FastJSONResponse(result)


def _type_id(object_type: str) -> str:
    """Rules and history are keyed by type id; standard names map here, custom objects go by their 2-<n> id
    (resolving a custom name would cost a records-svc call on routes that otherwise need none)."""
    standard = find_standard(object_type)
    if standard is not None:
        return standard.id
    if object_type.startswith("2-") and as_id(object_type[2:]) is not None:
        return object_type
    raise HubSpotError(400, f"Address custom objects by their object type id (2-<n>) on this route, not "
                            f"{echo(object_type)}")

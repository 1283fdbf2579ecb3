"""Associations v4 (HubSpot-compatible): record associations, batch, and labels per object pair."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import INT32_MAX, INT32_MIN, Int32, parse_after
from crm_common.responses import FastJSONResponse
from crm_common.timestamps import now_timestamp
from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from records_svc import association_service as links
from records_svc import repository
from records_svc.api.deps import Auth, Session
from records_svc.api.objects import api_source, parse_record_id
from records_svc.catalog import resolve_object_type

router = APIRouter(tags=["Associations"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429)
MAX_BATCH_CREATE = 2000
MAX_BATCH_READ = 1000
Category = Literal["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"]


class AssociationSpecIn(BaseModel):
    associationCategory: Category
    associationTypeId: Int32


class AssociationSpecOut(BaseModel):
    associationCategory: str
    associationTypeId: int


class LabelOut(BaseModel):
    category: str
    typeId: int
    label: str | None = None


class LabelsBetweenObjectPair(BaseModel):
    fromObjectTypeId: str
    fromObjectId: str
    toObjectTypeId: str
    toObjectId: str
    labels: list[str]


class MultiAssociatedObjectWithLabel(BaseModel):
    toObjectId: str
    associationTypes: list[LabelOut]


class NextPage(BaseModel):
    after: str
    link: str | None = None


class Paging(BaseModel):
    next: NextPage | None = None


class AssociationPage(BaseModel):
    results: list[MultiAssociatedObjectWithLabel]
    paging: Paging | None = None


class ObjectId(BaseModel):
    id: str | int


class BatchCreateItem(BaseModel):
    model_config = {"populate_by_name": True}

    from_: ObjectId = Field(alias="from")
    to: ObjectId
    types: list[AssociationSpecIn] = Field(default_factory=list)


class BatchCreateInput(BaseModel):
    inputs: list[BatchCreateItem]


class BatchDefaultItem(BaseModel):
    model_config = {"populate_by_name": True}

    from_: ObjectId = Field(alias="from")
    to: ObjectId


class BatchDefaultInput(BaseModel):
    inputs: list[BatchDefaultItem]


class BatchReadItem(BaseModel):
    id: str | int
    after: str | None = None


class BatchReadInput(BaseModel):
    inputs: list[BatchReadItem]


class BatchArchiveItem(BaseModel):
    model_config = {"populate_by_name": True}

    from_: ObjectId = Field(alias="from")
    to: list[ObjectId]


class BatchArchiveInput(BaseModel):
    inputs: list[BatchArchiveItem]


class LabelCreate(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=100)
    inverseLabel: str | None = None


class LabelUpdate(BaseModel):
    associationTypeId: Int32
    label: str = Field(min_length=1, max_length=100)
    inverseLabel: str | None = None


class LabelCollection(BaseModel):
    results: list[LabelOut]


class BatchResponse(BaseModel):
    status: str
    results: list[dict[str, Any]]
    startedAt: str
    completedAt: str
    numErrors: int | None = None
    errors: list[dict[str, Any]] | None = None


async def _pair(session: Any, account_id: int, from_key: str, to_key: str) -> tuple[links.PairTypes, links.PairTypes]:
    from_type = await resolve_object_type(session, account_id, from_key)
    to_type = await resolve_object_type(session, account_id, to_key)
    forward = await links.pair_types(session, account_id, from_type, to_type)
    backward = await links.pair_types(session, account_id, to_type, from_type)
    return forward, backward


def _pair_body(pair: links.PairTypes, from_id: int, to_id: int, kinds: list[links.AssociationKind]) -> dict:
    return {"fromObjectTypeId": pair.from_type.id, "fromObjectId": str(from_id),
            "toObjectTypeId": pair.to_type.id, "toObjectId": str(to_id),
            "labels": [k.label for k in kinds if k.label]}


# --- one record --------------------------------------------------------------------------------------------


@router.put("/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}",
            response_model=BatchResponse, responses=ERRORS, summary="Associate two records with the default type")
async def associate_default(fromObjectType: str, fromObjectId: str, toObjectType: str, toObjectId: str,
                            auth: Auth, session: Session) -> Any:
    started = now_timestamp()
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    from_id = parse_record_id(pair.from_type, fromObjectId, "fromObjectId")
    to_id = parse_record_id(pair.to_type, toObjectId, "toObjectId")
    await links.add(session, account_id=auth.account_id, pair=pair, from_id=from_id, to_id=to_id, kinds=[],
                    source=api_source(auth))
    assert pair.default is not None
    spec = {"associationCategory": pair.default.category, "associationTypeId": pair.default.type_id}
    results = [{"from": {"id": str(from_id)}, "to": {"id": str(to_id)}, "associationSpec": spec}]
    if pair.default.inverse_type_id is not None:
        results.append({"from": {"id": str(to_id)}, "to": {"id": str(from_id)},
                        "associationSpec": {**spec, "associationTypeId": pair.default.inverse_type_id}})
    return FastJSONResponse({"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now_timestamp()})


@router.put("/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/{toObjectType}/{toObjectId}",
            status_code=201, response_model=LabelsBetweenObjectPair, responses=ERRORS,
            summary="Associate two records with labels (replaces the pair's label set)")
async def associate_labeled(fromObjectType: str, fromObjectId: str, toObjectType: str, toObjectId: str,
                            payload: list[AssociationSpecIn], auth: Auth, session: Session) -> Any:
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    from_id = parse_record_id(pair.from_type, fromObjectId, "fromObjectId")
    to_id = parse_record_id(pair.to_type, toObjectId, "toObjectId")
    kinds = [pair.get(s.associationCategory, s.associationTypeId) for s in payload]
    current = await links.add(session, account_id=auth.account_id, pair=pair, from_id=from_id, to_id=to_id,
                              kinds=kinds, source=api_source(auth), replace=True)
    return FastJSONResponse(_pair_body(pair, from_id, to_id, current), status_code=201)


@router.get("/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/{toObjectType}",
            response_model=AssociationPage, responses=ERRORS, summary="List a record's associations")
async def list_associations(fromObjectType: str, fromObjectId: str, toObjectType: str, auth: Auth,
                            session: Session, after: str | None = None, limit: int = 500) -> Any:
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    from_id = parse_record_id(pair.from_type, fromObjectId, "fromObjectId")
    return FastJSONResponse(await _page(session, auth.account_id, pair, from_id, after, limit, fromObjectType,
                                      toObjectType))


async def _page(session: Any, account_id: int, pair: links.PairTypes, from_id: int, after: str | None, limit: int,
                from_key: str, to_key: str, after_field: str = "after") -> dict[str, Any]:
    start = parse_after(after, field=after_field)
    limit = max(1, min(limit, 500))
    rows = await repository.associated_page(session, account_id, from_id, pair.to_type.id,
                                            after=start, limit=limit + 1)
    results = []
    for row in rows[:limit]:
        types = []
        for category, type_id in zip(row["categories"], row["type_ids"], strict=True):
            kind = pair.kinds.get((category, type_id))
            types.append({"category": category, "typeId": type_id, "label": kind.label if kind else None})
        results.append({"toObjectId": str(row["to_id"]), "associationTypes": types})
    body: dict[str, Any] = {"results": results}
    if len(rows) > limit:
        cursor = str(rows[limit - 1]["to_id"])
        body["paging"] = {"next": {"after": cursor, "link": f"/crm/v4/objects/{from_key}/{from_id}/associations/"
                                                            f"{to_key}?after={cursor}"}}
    return body


@router.delete("/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/{toObjectType}/{toObjectId}",
               status_code=204, responses=ERRORS, summary="Remove every association between two records")
async def remove_associations(fromObjectType: str, fromObjectId: str, toObjectType: str, toObjectId: str,
                              auth: Auth, session: Session) -> Response:
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    await links.remove(session, account_id=auth.account_id, pair=pair,
                       from_id=parse_record_id(pair.from_type, fromObjectId, "fromObjectId"),
                       to_ids=[parse_record_id(pair.to_type, toObjectId, "toObjectId")], kinds=None, source=api_source(auth))
    return Response(status_code=204)


# --- batch -------------------------------------------------------------------------------------------------


def _check_size(inputs: list[Any], limit: int) -> None:
    if len(inputs) > limit:
        raise HubSpotError(400, f"Batch input must contain at most {limit} inputs; got {len(inputs)}")


def _batch_errors(outcome: links.BatchOutcome, inputs: list[Any]) -> list[dict[str, Any]]:
    return [{"status": "error", "category": "OBJECT_NOT_FOUND" if "No " in message else "VALIDATION_ERROR",
             "message": message, "context": {"fromId": [str(inputs[i].from_.id)], "toId": [str(inputs[i].to.id)]},
             "links": {}, "errors": []}
            for i, message in sorted(outcome.errors.items())]


def _batch_response(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str,
                    ok_status: int) -> FastJSONResponse:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now_timestamp()}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
    return FastJSONResponse(body, status_code=207 if errors else ok_status)


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/create", status_code=201,
             response_model=BatchResponse,
             responses={207: {"model": BatchResponse, "description": "Some inputs failed"}, **ERRORS},
             summary="Associate records with labels in batch")
async def batch_create(fromObjectType: str, toObjectType: str, payload: BatchCreateInput, auth: Auth,
                       session: Session) -> Any:
    _check_size(payload.inputs, MAX_BATCH_CREATE)
    started = now_timestamp()
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    requests = [links.PairRequest(index=i, from_id=parse_record_id(pair.from_type, item.from_.id,
                                                                   f"inputs[{i}].from.id"),
                                  to_id=parse_record_id(pair.to_type, item.to.id, f"inputs[{i}].to.id"),
                                  kinds=[pair.get(s.associationCategory, s.associationTypeId) for s in item.types])
                for i, item in enumerate(payload.inputs)]
    outcome = await links.add_many(session, account_id=auth.account_id, pair=pair, requests=requests,
                                   source=api_source(auth))
    results = [_pair_body(pair, r.from_id, r.to_id, outcome.labels[r.index]) for r in requests
               if r.index in outcome.labels]
    return _batch_response(results, _batch_errors(outcome, payload.inputs), started, 201)


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/associate/default",
             response_model=BatchResponse,
             responses={207: {"model": BatchResponse, "description": "Some inputs failed"}, **ERRORS},
             summary="Associate records with the default type in batch")
async def batch_default(fromObjectType: str, toObjectType: str, payload: BatchDefaultInput, auth: Auth,
                        session: Session) -> Any:
    _check_size(payload.inputs, MAX_BATCH_CREATE)
    started = now_timestamp()
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    requests = [links.PairRequest(index=i, from_id=parse_record_id(pair.from_type, item.from_.id,
                                                                   f"inputs[{i}].from.id"),
                                  to_id=parse_record_id(pair.to_type, item.to.id, f"inputs[{i}].to.id"), kinds=[])
                for i, item in enumerate(payload.inputs)]
    outcome = await links.add_many(session, account_id=auth.account_id, pair=pair, requests=requests,
                                   source=api_source(auth))
    assert pair.default is not None
    spec = {"associationCategory": pair.default.category, "associationTypeId": pair.default.type_id}
    results = [{"from": {"id": str(r.from_id)}, "to": {"id": str(r.to_id)}, "associationSpec": spec}
               for r in requests if r.index in outcome.labels]
    return _batch_response(results, _batch_errors(outcome, payload.inputs), started, 200)


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", response_model=BatchResponse,
             responses=ERRORS, summary="Read associations of many records")
async def batch_read(fromObjectType: str, toObjectType: str, payload: BatchReadInput, auth: Auth,
                     session: Session) -> Any:
    _check_size(payload.inputs, MAX_BATCH_READ)
    started = now_timestamp()
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    results = []
    for index, item in enumerate(payload.inputs):
        from_id = parse_record_id(pair.from_type, item.id, f"inputs[{index}].id")
        page = await _page(session, auth.account_id, pair, from_id, item.after, 500, fromObjectType, toObjectType,
                           after_field=f"inputs[{index}].after")
        entry: dict[str, Any] = {"from": {"id": str(from_id)}, "to": page["results"]}
        if "paging" in page:
            entry["paging"] = page["paging"]
        results.append(entry)
    return FastJSONResponse({"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now_timestamp()})


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/archive", status_code=204,
             responses=ERRORS, summary="Remove associations in batch")
async def batch_archive(fromObjectType: str, toObjectType: str, payload: BatchArchiveInput, auth: Auth,
                        session: Session) -> Response:
    _check_size(payload.inputs, MAX_BATCH_CREATE)
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    pairs = [(parse_record_id(pair.from_type, item.from_.id), parse_record_id(pair.to_type, t.id))
             for item in payload.inputs for t in item.to]
    await links.remove_many(session, account_id=auth.account_id, pair=pair, pairs=pairs, kinds=None,
                            source=api_source(auth))
    return Response(status_code=204)


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/labels/archive", status_code=204,
             responses=ERRORS, summary="Remove specific labels between records in batch")
async def batch_archive_labels(fromObjectType: str, toObjectType: str, payload: BatchCreateInput, auth: Auth,
                               session: Session) -> Response:
    _check_size(payload.inputs, MAX_BATCH_CREATE)
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    kinds: dict[tuple[int, int], list[links.AssociationKind]] = {}
    for item in payload.inputs:
        key = (parse_record_id(pair.from_type, item.from_.id), parse_record_id(pair.to_type, item.to.id))
        kinds.setdefault(key, []).extend(pair.get(s.associationCategory, s.associationTypeId) for s in item.types)
    await links.remove_many(session, account_id=auth.account_id, pair=pair, pairs=list(kinds), kinds=kinds,
                            source=api_source(auth))
    return Response(status_code=204)


# --- labels ------------------------------------------------------------------------------------------------


@router.get("/crm/v4/associations/{fromObjectType}/{toObjectType}/labels", response_model=LabelCollection,
            responses=ERRORS, summary="List the association types of an object pair")
async def list_labels(fromObjectType: str, toObjectType: str, auth: Auth, session: Session) -> Any:
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    return FastJSONResponse({"results": links.labels_out(list(pair.kinds.values()))})


@router.post("/crm/v4/associations/{fromObjectType}/{toObjectType}/labels", response_model=LabelCollection,
             responses=ERRORS, summary="Create an association label (paired when inverseLabel is given)")
async def create_label(fromObjectType: str, toObjectType: str, payload: LabelCreate, auth: Auth,
                       session: Session) -> Any:
    pair, reverse = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    created = await links.create_label(session, account_id=auth.account_id, pair=pair, reverse=reverse,
                                       label=payload.label, name=payload.name, inverse_label=payload.inverseLabel)
    return FastJSONResponse({"results": links.labels_out(created)})


@router.put("/crm/v4/associations/{fromObjectType}/{toObjectType}/labels", status_code=204, responses=ERRORS,
            summary="Rename an association label")
async def update_label(fromObjectType: str, toObjectType: str, payload: LabelUpdate, auth: Auth,
                       session: Session) -> Response:
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    kind = pair.get("USER_DEFINED", payload.associationTypeId)
    await repository.rename_association_definition(session, auth.account_id, kind.type_id, payload.label)
    if payload.inverseLabel and kind.inverse_type_id is not None and kind.inverse_type_id != kind.type_id:
        await repository.rename_association_definition(session, auth.account_id, kind.inverse_type_id,
                                                       payload.inverseLabel)
    return Response(status_code=204)


@router.delete("/crm/v4/associations/{fromObjectType}/{toObjectType}/labels/{associationTypeId}", status_code=204,
               responses=ERRORS, summary="Delete an association label (and its inverse)")
async def delete_label(fromObjectType: str, toObjectType: str,
                       associationTypeId: Annotated[int, Path(ge=INT32_MIN, le=INT32_MAX)], auth: Auth,
                       session: Session) -> Response:
    pair, _ = await _pair(session, auth.account_id, fromObjectType, toObjectType)
    kind = pair.kinds.get(("USER_DEFINED", associationTypeId))
    if kind is None:
        raise HubSpotError(404, f"No user-defined association label {associationTypeId} from {pair.from_type.name} "
                                f"to {pair.to_type.name}")
    ids = [kind.type_id] + ([kind.inverse_type_id] if kind.inverse_type_id is not None else [])
    await repository.delete_association_definition(session, auth.account_id, ids)
    return Response(status_code=204)

"""CRM objects v3: CRUD, batch, search (HubSpot-compatible)."""

from __future__ import annotations

from typing import Annotated, Any

from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import parse_after, parse_id
from crm_common.logging import current_request_id
from crm_common.outbox import add_event
from crm_common.responses import FastJSONResponse
from crm_common.timestamps import now_timestamp
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository, service
from records_svc.api.deps import Auth, Session, retrying_races
from records_svc.api.schemas import (
    BatchArchiveInput,
    BatchCreateInput,
    BatchReadInput,
    BatchResponse,
    BatchUpdateInput,
    BatchUpsertInput,
    BatchUpsertResponse,
    CollectionResponse,
    GdprDeleteInput,
    ObjectCreateInput,
    ObjectUpdateInput,
    SearchRequest,
    SearchResponse,
    SimplePublicObject,
)
from records_svc.bulk import BulkRow, bulk_upsert
from records_svc.catalog import association_targets, catalog_knowing, load_catalog, resolve_object_type
from records_svc.domain.object_types import ObjectType
from records_svc.domain.search import (
    COLUMN_PROPERTIES,
    MAX_PAGE_SIZE,
    MAX_RESULTS,
    Filter,
    SearchCompiler,
    SearchError,
)
from records_svc.service import WriteSource, to_public

router = APIRouter(prefix="/crm/v3/objects", tags=["Objects"])

MAX_BATCH_INPUTS = 100
MAX_LIST_LIMIT = 100
ERRORS = error_responses(400, 401, 403, 404, 409, 429)

ListParam = Annotated[list[str] | None, Query()]


def split_list(values: list[str] | None) -> list[str]:
    """HubSpot documents comma-separated lists; the SDK repeats the key. Accept both."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


def api_source(auth: Any) -> WriteSource:
    return WriteSource(source_type="API", source_id=str(auth.token_id) if auth.token_id else None,
                       operation_id=f"request:{current_request_id()}")


def check_batch_size(inputs: list[Any]) -> None:
    if len(inputs) > MAX_BATCH_INPUTS:
        raise HubSpotError(400, f"Batch input must contain at most {MAX_BATCH_INPUTS} inputs; got {len(inputs)}",
                           errors=[{"message": f"too many inputs: {len(inputs)}", "code": "TOO_MANY_INPUTS",
                                    "in": "inputs"}])


def parse_record_id(object_type: ObjectType, value: str | int, field: str = "id") -> int:
    return parse_id(value, field=field, what=f"{object_type.singular} id")


async def with_associations(session: Any, auth: Any, object_type: ObjectType, bodies: list[dict[str, Any]],
                            associations: list[str]) -> None:
    targets = [await resolve_object_type(session, auth.account_id, key) for key in associations]
    if not targets:
        return
    mapping = await service.association_map(session, account_id=auth.account_id, object_type=object_type,
                                            record_ids=[int(b["id"]) for b in bodies], to_types=targets)
    for body in bodies:
        found = mapping.get(int(body["id"]))
        if found:
            body["associations"] = found


# --- list / read / create / update / archive ------------------------------------------------------------


@router.get("/{objectType}", response_model=CollectionResponse, responses=ERRORS, summary="List records")
async def list_objects(
    objectType: str, auth: Auth, session: Session,
    limit: Annotated[int, Query(ge=1)] = 10,
    after: str | None = None,
    properties: ListParam = None,
    propertiesWithHistory: ListParam = None,
    associations: ListParam = None,
    archived: bool = False,
) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    limit = min(limit, MAX_LIST_LIMIT)
    start = parse_after(after)
    rows = await repository.list_records(session, auth.account_id, object_type.id, after=start, limit=limit + 1,
                                         archived=archived)
    history = split_list(propertiesWithHistory)
    if history:
        full = await repository.fetch_records(session, auth.account_id, object_type.id,
                                              [r["id"] for r in rows[:limit]], archived=archived, with_history=True)
        rows = [full.get(r["id"], r) for r in rows[:limit]] + rows[limit:]
    bodies = [to_public(r, object_type, requested=split_list(properties), with_history=history)
              for r in rows[:limit]]
    await with_associations(session, auth, object_type, bodies, split_list(associations))
    response: dict[str, Any] = {"results": bodies}
    if len(rows) > limit:
        cursor = str(rows[limit - 1]["id"])
        response["paging"] = {"next": {"after": cursor,
                                       "link": f"/crm/v3/objects/{objectType}?after={cursor}&limit={limit}"}}
    return FastJSONResponse(response)


@router.get("/{objectType}/{objectId}", response_model=SimplePublicObject, responses=ERRORS, summary="Read a record")
async def get_object(
    objectType: str, objectId: str, auth: Auth, session: Session,
    properties: ListParam = None,
    propertiesWithHistory: ListParam = None,
    associations: ListParam = None,
    archived: bool = False,
    idProperty: str | None = None,
) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    history = split_list(propertiesWithHistory)
    row = await service.get_record(session, account_id=auth.account_id, object_type=object_type,
                                   record_id=objectId, id_property=idProperty, archived=archived,
                                   with_history=bool(history))
    body = to_public(row, object_type, requested=split_list(properties), with_history=history)
    await with_associations(session, auth, object_type, [body], split_list(associations))
    return FastJSONResponse(body)


@router.post("/{objectType}", status_code=201, response_model=SimplePublicObject, responses=ERRORS,
             summary="Create a record")
async def create_object(objectType: str, payload: ObjectCreateInput, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    row = await service.create_record(
        session, account_id=auth.account_id, object_type=object_type, properties=payload.properties,
        associations=[a.model_dump() for a in payload.associations], source=api_source(auth))
    return FastJSONResponse(to_public(row, object_type, requested=list(payload.properties)), status_code=201)


@router.patch("/{objectType}/{objectId}", response_model=SimplePublicObject, responses=ERRORS,
              summary="Update a record")
async def update_object(objectType: str, objectId: str, payload: ObjectUpdateInput, auth: Auth, session: Session,
                        idProperty: str | None = None) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    row = await service.update_record(session, account_id=auth.account_id, object_type=object_type,
                                      record_id=objectId, id_property=idProperty, properties=payload.properties,
                                      source=api_source(auth))
    return FastJSONResponse(to_public(row, object_type, requested=list(payload.properties)))


@router.delete("/{objectType}/{objectId}", status_code=204, responses=ERRORS, summary="Archive a record")
async def archive_object(objectType: str, objectId: str, auth: Auth, session: Session) -> Response:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    # HubSpot answers 204 for an id that does not exist or is already archived.
    await service.archive_records(session, account_id=auth.account_id, object_type=object_type,
                                  ids=[parse_record_id(object_type, objectId, "objectId")], source=api_source(auth))
    return Response(status_code=204)


# --- batch -----------------------------------------------------------------------------------------------


def batch_body(results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str) -> tuple[dict, int]:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": now_timestamp()}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return body, 207
    return body, 200


def standard_error(status: int, category: str, message: str, context: dict[str, list[str]] | None = None,
                   sub_category: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"status": "error", "category": category, "message": message,
                             "context": context or {}, "links": {}, "errors": []}
    if sub_category:
        error["subCategory"] = sub_category
    return error


@router.post("/{objectType}/batch/create", status_code=201, response_model=BatchResponse,
             responses={207: {"model": BatchResponse, "description": "Some inputs failed"}, **ERRORS},
             summary="Create a batch of records")
async def batch_create(objectType: str, payload: BatchCreateInput, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    check_batch_size(payload.inputs)
    started = now_timestamp()
    partial = all(i.objectWriteTraceId for i in payload.inputs) and payload.inputs
    results, errors = [], []
    for item in payload.inputs:
        if not partial:
            row = await service.create_record(session, account_id=auth.account_id, object_type=object_type,
                                              properties=item.properties,
                                              associations=[a.model_dump() for a in item.associations],
                                              source=api_source(auth))
            results.append(to_public(row, object_type, requested=list(item.properties)))
            continue
        try:
            async with session.begin_nested():
                row = await service.create_record(session, account_id=auth.account_id, object_type=object_type,
                                                  properties=item.properties,
                                                  associations=[a.model_dump() for a in item.associations],
                                                  source=api_source(auth))
            results.append(to_public(row, object_type, requested=list(item.properties)))
        except HubSpotError as exc:
            errors.append(standard_error(exc.status, exc.category, exc.message,
                                         {"objectWriteTraceId": [item.objectWriteTraceId or ""]}))
    body, status = batch_body(results, errors, started)
    return FastJSONResponse(body, status_code=201 if status == 200 else 207)


@router.post("/{objectType}/batch/read", response_model=BatchResponse,
             responses={207: {"model": BatchResponse, "description": "Some records were not found"}, **ERRORS},
             summary="Read a batch of records")
async def batch_read(objectType: str, payload: BatchReadInput, auth: Auth, session: Session,
                     archived: bool = False) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    check_batch_size(payload.inputs)
    started = now_timestamp()
    catalog = await load_catalog(session, auth.account_id, object_type)
    resolved: dict[str, int | None] = {}
    for item in payload.inputs:
        resolved[str(item.id)] = await service.resolve_id(session, account_id=auth.account_id, catalog=catalog,
                                                          record_id=str(item.id), id_property=payload.idProperty)
    ids = [i for i in resolved.values() if i is not None]
    rows = await repository.fetch_records(session, auth.account_id, object_type.id, ids, archived=archived,
                                          with_history=bool(payload.propertiesWithHistory))
    results, missing = [], []
    for key, record_id in resolved.items():
        if record_id is None or record_id not in rows:
            missing.append(key)
        elif all(r["id"] != str(record_id) for r in results):
            results.append(to_public(rows[record_id], object_type, requested=payload.properties,
                                     with_history=payload.propertiesWithHistory))
    errors = [standard_error(404, "OBJECT_NOT_FOUND", f"Could not get some {object_type.name} objects, they may be "
                             f"deleted or not exist. Check that ids are valid.", {"ids": missing})] if missing else []
    body, status = batch_body(results, errors, started)
    return FastJSONResponse(body, status_code=status)


@router.post("/{objectType}/batch/update", response_model=BatchResponse,
             responses={207: {"model": BatchResponse, "description": "Some inputs failed"}, **ERRORS},
             summary="Update a batch of records")
async def batch_update(objectType: str, payload: BatchUpdateInput, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    check_batch_size(payload.inputs)
    started = now_timestamp()
    catalog = await catalog_knowing(session, auth.account_id, object_type,
                                    {name for item in payload.inputs for name in item.properties})
    source = api_source(auth)
    updates: list[tuple[int, dict[str, str]]] = []
    missing: list[str] = []
    problems = []
    for item in payload.inputs:
        validated = service.validate_properties(catalog, item.properties, creating=False, source=source)
        problems.extend(validated.problems)
        # Batch update never follows merge aliases (HubSpot documents the same).
        record_id = await service.resolve_id(session, account_id=auth.account_id, catalog=catalog,
                                             record_id=str(item.id), id_property=item.idProperty)
        if record_id is None:
            missing.append(str(item.id))
        else:
            updates.append((record_id, validated.values))
    if problems:
        raise service.property_error(problems)
    outcomes = await service.apply_updates(session, account_id=auth.account_id, catalog=catalog, updates=updates,
                                           source=source, keep_existing=[])
    missing.extend(str(i) for i, _ in updates if i not in outcomes)
    seen: set[int] = set()
    results = []
    for record_id, props in updates:
        row = outcomes.get(record_id)
        if isinstance(row, dict) and record_id not in seen:
            seen.add(record_id)
            results.append(to_public(row, object_type, requested=list(props)))
    errors = [standard_error(404, "OBJECT_NOT_FOUND", f"Could not update some {object_type.name}: no record with "
                             "these ids", {"ids": missing})] if missing else []
    body, status = batch_body(results, errors, started)
    return FastJSONResponse(body, status_code=status)


@router.post("/{objectType}/batch/upsert", response_model=BatchUpsertResponse,
             responses={207: {"model": BatchUpsertResponse, "description": "Some inputs failed"}, **ERRORS},
             summary="Create or update a batch of records by a unique property")
async def batch_upsert(objectType: str, payload: BatchUpsertInput, auth: Auth, request: Request) -> Any:
    started = now_timestamp()
    check_batch_size(payload.inputs)
    id_properties = {item.idProperty or "hs_object_id" for item in payload.inputs}
    if len(id_properties) > 1:
        raise HubSpotError(400, "Every input of one upsert batch must use the same idProperty; got "
                                + ", ".join(sorted(id_properties)))
    id_property = id_properties.pop() if id_properties else "hs_object_id"
    source = api_source(auth)

    async def write(session: AsyncSession) -> list[dict[str, Any]]:
        object_type = await resolve_object_type(session, auth.account_id, objectType)
        names = {name for item in payload.inputs for name in item.properties} | {id_property}
        catalog = await catalog_knowing(session, auth.account_id, object_type, names - {"hs_object_id"})
        if id_property != "hs_object_id" and id_property not in catalog.unique_namespaces():
            raise HubSpotError(400, f"idProperty {id_property!r} is not a unique property of {object_type.name}")
        # HubSpot does not support partial upserts: one bad value fails the whole batch, as a single write would.
        problems = [p for item in payload.inputs
                    for p in service.validate_properties(catalog, item.properties, creating=False,
                                                         source=source).problems]
        if problems:
            raise service.property_error(problems)
        rows = [BulkRow(ref=index, id=str(item.id), properties=item.properties)
                for index, item in enumerate(payload.inputs)]
        # The same set-based path imports use: one statement per step for the whole batch.
        outcomes = await bulk_upsert(session, account_id=auth.account_id, catalog=catalog, rows=rows,
                                     operation="UPSERT", id_property=id_property, keep_existing=[],
                                     source_type=source.source_type, source_id=source.source_id, trusted=False,
                                     operation_id=source.operation_id)
        failed = [(payload.inputs[o.ref], e) for o in outcomes if o.status == "ERROR" for e in o.errors]
        if failed:
            item, error = failed[0]
            raise HubSpotError(400 if error.code != "DUPLICATE_UNIQUE_PROPERTY_VALUE" else 409,
                               f"Input with id {item.id}: {error.message}",
                               errors=[{"message": f"{item.id}: {e.message}", "code": e.code,
                                        **({"context": {"propertyName": [e.property]}} if e.property else {})}
                                       for item, e in failed])
        stored = await repository.fetch_records(session, auth.account_id, object_type.id,
                                                sorted({o.id for o in outcomes if o.id is not None}))
        results, seen = [], set()
        for outcome in outcomes:
            if outcome.id in seen or outcome.id not in stored:
                continue
            seen.add(outcome.id)
            item = payload.inputs[outcome.ref]
            requested = list(dict.fromkeys([*item.properties,
                                            *([id_property] if id_property != "hs_object_id" else [])]))
            results.append({**to_public(stored[outcome.id], object_type, requested=requested),
                            "new": outcome.status == "CREATED"})
        return results

    # Its own transaction, run again when a concurrent upsert of the same new values wins the race.
    results = await retrying_races(request.app.state.runtime.sessionmaker, write)
    body, status = batch_body(results, [], started)
    return FastJSONResponse(body, status_code=status)


@router.post("/{objectType}/batch/archive", status_code=204, responses=ERRORS, summary="Archive a batch of records")
async def batch_archive(objectType: str, payload: BatchArchiveInput, auth: Auth, session: Session) -> Response:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    check_batch_size(payload.inputs)
    ids = [parse_record_id(object_type, item.id) for item in payload.inputs]
    await service.archive_records(session, account_id=auth.account_id, object_type=object_type, ids=ids,
                                  source=api_source(auth))
    return Response(status_code=204)


# --- search ----------------------------------------------------------------------------------------------


@router.post("/{objectType}/search", response_model=SearchResponse, responses=ERRORS, summary="Search records")
async def search_objects(objectType: str, payload: SearchRequest, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    limit = payload.limit or 10
    if limit > MAX_PAGE_SIZE:
        raise HubSpotError(400, f"limit must be at most {MAX_PAGE_SIZE}; got {limit}")
    offset = parse_after(payload.after)
    if offset + limit > MAX_RESULTS:
        raise HubSpotError(400, f"Search results are capped at {MAX_RESULTS}: after + limit may not exceed it")
    sort = None
    if payload.sorts:
        if len(payload.sorts) > 1:
            raise HubSpotError(400, "Only one sort is supported")
        first = payload.sorts[0]
        if isinstance(first, str):
            name = first.lstrip("-")
            sort = (name, "DESCENDING" if first.startswith("-") else "ASCENDING")
        else:
            sort = (first.propertyName, first.direction)
    referenced = {f.propertyName for g in payload.filterGroups for f in g.filters
                  if not f.propertyName.startswith("associations.")} | ({sort[0]} if sort else set())
    catalog = await catalog_knowing(session, auth.account_id, object_type, referenced - set(COLUMN_PROPERTIES))
    compiler = SearchCompiler(object_type, catalog.properties)
    try:
        compiled = compiler.compile(
            filter_groups=[[Filter(**f.model_dump()) for f in g.filters] for g in payload.filterGroups],
            query=payload.query, sort=sort, association_types=await association_targets(session, auth.account_id) if any(
                f.propertyName.startswith("associations.") for g in payload.filterGroups for f in g.filters) else {})
    except SearchError as exc:
        errors = [{"message": exc.message, "context": {"propertyName": [exc.property_name]}}] \
            if exc.property_name else None
        raise HubSpotError(400, exc.message, errors=errors) from None
    rows, total = await repository.search_records(session, auth.account_id, object_type.id, where=compiled.where,
                                                  order_by=compiled.order_by, params=compiled.params,
                                                  offset=offset, limit=limit)
    body: dict[str, Any] = {"total": total,
                            "results": [to_public(r, object_type, requested=payload.properties) for r in rows]}
    next_offset = offset + len(rows)
    if next_offset < total and next_offset < MAX_RESULTS:
        body["paging"] = {"next": {"after": str(next_offset)}}
    return FastJSONResponse(body)


corral_router = APIRouter(prefix="/corral/v1/records", tags=["Objects"])


@corral_router.post("/{objectType}/{objectId}/restore", response_model=SimplePublicObject, responses=ERRORS,
                    summary="Restore an archived record (beyond HubSpot)")
async def restore_object(objectType: str, objectId: str, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    record_id = parse_record_id(object_type, objectId, "objectId")
    restored = await service.restore_records(session, account_id=auth.account_id, object_type=object_type,
                                             ids=[record_id], source=api_source(auth))
    rows = await repository.fetch_records(session, auth.account_id, object_type.id, [record_id])
    if not restored and record_id not in rows:
        raise service.not_found(object_type, objectId)
    return FastJSONResponse(to_public(rows[record_id], object_type, requested=None))


@router.post("/{objectType}/gdpr-delete", status_code=204, responses=ERRORS,
             summary="Permanently delete a record and its history (GDPR)")
async def gdpr_delete(objectType: str, payload: GdprDeleteInput, auth: Auth, session: Session) -> Response:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await load_catalog(session, auth.account_id, object_type)
    record_id = await service.resolve_id(session, account_id=auth.account_id, catalog=catalog,
                                         record_id=payload.objectId, id_property=payload.idProperty)
    if record_id is None or not await repository.fetch_records(session, auth.account_id, object_type.id,
                                                               [record_id], archived=None):
        raise service.not_found(object_type, payload.objectId)
    await repository.hard_delete_records(session, auth.account_id, [record_id])
    await add_event(session, service.record_event("record.deleted", auth.account_id, object_type, record_id,
                                                  {"reason": "GDPR"}))
    return Response(status_code=204)

"""Internal routes for other services (never exposed by the gateway)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from crm_common.contracts.records import (
    MAX_BULK_ROWS,
    AssociationInput,
    BulkAssociationRequest,
    BulkAssociationResponse,
    BulkAssociationResult,
    BulkUpsertOptions,
    BulkUpsertRequest,
    BulkUpsertResponse,
    JournalEntry,
    JournalPage,
    MergeApplyRequest,
    MergeApplyResponse,
    MergeUnapplyRequest,
    MergeUnapplyResponse,
    RecordSnapshot,
    ResolveRequest,
    ResolveResponse,
    UndoReport,
    UndoRequest,
)
from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import as_id, parse_id
from crm_common.responses import FastJSONResponse
from crm_common.timestamps import timestamp_or_none
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import association_service as links
from records_svc import merges, repository
from records_svc.api.deps import Auth, Session, retrying_races
from records_svc.bulk import BulkRow, RowResult, bulk_upsert
from records_svc.catalog import catalog_knowing, load_catalog, resolve_object_type
from records_svc.domain.properties import InvalidValue, normalize_value
from records_svc.metrics import BULK_ROWS
from records_svc.service import WriteSource
from records_svc.undo import undo_operation

router = APIRouter(prefix="/internal/v1", tags=["Internal"])



BULK_VALUE_TYPES = (str, int, float, bool)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its nested models written in place (for a hand-parsed body)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


def parse_bulk_request(body: bytes) -> tuple[BulkUpsertOptions, list[BulkRow]]:
    """The bulk body, checked by hand: validating 20,000 rows through pydantic cost more than writing them."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HubSpotError(400, f"Invalid JSON body: {exc}", category="VALIDATION_ERROR") from None
    if not isinstance(data, dict):
        raise HubSpotError(400, "The body must be a JSON object", category="VALIDATION_ERROR")
    raw_rows = data.pop("rows", None)
    if not isinstance(raw_rows, list):
        raise HubSpotError(400, "rows must be a list", category="VALIDATION_ERROR")
    if len(raw_rows) > MAX_BULK_ROWS:
        raise HubSpotError(400, f"At most {MAX_BULK_ROWS} rows per bulk call; got {len(raw_rows)}")
    try:
        options = BulkUpsertOptions.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HubSpotError(400, f"{where}: {first['msg']}", category="VALIDATION_ERROR") from None
    rows: list[BulkRow] = []
    refs: set[int] = set()
    for index, raw in enumerate(raw_rows):
        ref = raw.get("ref") if isinstance(raw, dict) else None
        properties = raw.get("properties") if isinstance(raw, dict) else None
        key = raw.get("id") if isinstance(raw, dict) else None
        if type(ref) is not int or not isinstance(properties, dict) or not (key is None or isinstance(key, str)):
            raise HubSpotError(400, f"rows[{index}] must be {{\"ref\": <int>, \"id\": <string, optional>, "
                                    f"\"properties\": {{...}}}}", category="VALIDATION_ERROR")
        if ref in refs:
            raise HubSpotError(400, f"rows[{index}]: ref {ref} appears twice", category="VALIDATION_ERROR")
        refs.add(ref)
        for name, value in properties.items():
            if value is not None and not isinstance(value, BULK_VALUE_TYPES):
                raise HubSpotError(400, f"rows[{index}].properties.{name}: a value must be a string, number, "
                                        "boolean or null", category="VALIDATION_ERROR")
        rows.append(BulkRow(ref=ref, id=key, properties=properties))
    return options, rows


@router.post("/records/{objectType}/bulk-upsert", response_model=BulkUpsertResponse,
             responses=error_responses(400, 401), summary="Set-based upsert of many rows (imports)",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": _inline_schema(BulkUpsertRequest)}}}})
async def bulk_upsert_route(objectType: str, auth: Auth, request: Request) -> Any:
    payload, rows = parse_bulk_request(await request.body())
    runtime = request.app.state.runtime

    async def write(session: AsyncSession) -> tuple[bytes, list[RowResult]]:
        if payload.batchKey:
            stored = await repository.stored_answer(session, auth.account_id, payload.batchKey)
            if stored is not None:
                return stored, []
        object_type = await resolve_object_type(session, auth.account_id, objectType)
        catalog = await catalog_knowing(session, auth.account_id, object_type,
                                        {name for row in rows for name in row.properties})
        try:
            results = await bulk_upsert(
                session, account_id=auth.account_id, catalog=catalog, rows=rows,
                operation=payload.operation, id_property=payload.idProperty,
                keep_existing=payload.keepExisting, source_type=payload.sourceType,
                source_id=payload.sourceId, operation_id=payload.operationId, writer=auth.caller)
        except ValueError as exc:
            raise HubSpotError(400, str(exc)) from None
        answer = _bulk_answer(results)
        if payload.batchKey:
            await repository.store_answer(session, auth.account_id, payload.batchKey, answer,
                                          retention_hours=runtime.settings.batch_answer_retention_hours)
        return answer, results

    answer, results = await retrying_races(runtime.sessionmaker, write)
    for status in ("CREATED", "UPDATED", "UNCHANGED", "ERROR"):
        BULK_ROWS.labels("failed" if status == "ERROR" else status.lower()).inc(
            sum(1 for r in results if r.status == status))
    return Response(answer, media_type="application/json")


def _bulk_answer(results: list[RowResult]) -> bytes:
    """The BulkUpsertResponse of a write, as sent (and as stored for its batch key)."""
    counts = {"CREATED": 0, "UPDATED": 0, "UNCHANGED": 0, "ERROR": 0}
    out = []
    for r in results:
        counts[r.status] += 1
        out.append({"ref": r.ref, "id": str(r.id) if r.id is not None else None, "status": r.status,
                    "errors": [e.__dict__ for e in r.errors]})
    return orjson.dumps({"results": out, "created": counts["CREATED"], "updated": counts["UPDATED"],
                         "unchanged": counts["UNCHANGED"], "failed": counts["ERROR"]})


@router.post("/records/{objectType}/resolve", response_model=ResolveResponse, responses=error_responses(400, 401),
             summary="Find records by a property value (unique properties, company domain, record id)")
async def resolve_records(objectType: str, payload: ResolveRequest, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await load_catalog(session, auth.account_id, object_type)
    matches: dict[str, list[str]] = {}
    if payload.property == "hs_object_id":
        ids = [record_id for v in payload.values if (record_id := as_id(v)) is not None]
        found = await repository.existing_record_ids(session, auth.account_id, object_type.id, ids)
        return FastJSONResponse({"matches": {str(i): [str(i)] for i in sorted(found)}})
    prop = catalog.properties.get(payload.property)
    if prop is None:
        raise HubSpotError(400, f'Property "{payload.property}" does not exist on {object_type.name}')
    normalized: dict[str, str] = {}
    for value in payload.values:
        try:
            normalized[value] = normalize_value(prop, value).lower()
        except InvalidValue:
            continue
    namespace = catalog.unique_namespaces().get(payload.property)
    if namespace:
        owners = await repository.resolve_unique_values(session, auth.account_id, object_type.id, namespace,
                                                        sorted(set(normalized.values())))
        matches = {v: [str(i)] for v, i in owners.items()}
    elif object_type.id == "0-2" and payload.property == "domain":
        matches = {k: [str(i) for i in v] for k, v in (await repository.companies_by_domain(
            session, auth.account_id, sorted(set(normalized.values())))).items()}
    else:
        raise HubSpotError(400, f"{payload.property} is not a lookup property of {object_type.name}: use a unique "
                                "property, hs_object_id, or a company domain")
    return FastJSONResponse({"matches": matches})


@router.post("/associations/bulk", response_model=BulkAssociationResponse, responses=error_responses(400, 401),
             summary="Add many associations (labels are added, never replaced)")
async def bulk_associate(payload: BulkAssociationRequest, auth: Auth, session: Session, request: Request) -> Any:
    return await _answer_once(request, session, auth.account_id, payload.batchKey,
                              lambda: _associate(payload, auth.account_id, session))


async def _associate(payload: BulkAssociationRequest, account_id: int, session: AsyncSession) -> dict[str, Any]:
    source = WriteSource(source_type=payload.sourceType, operation_id=payload.operationId, trusted=True)
    results: dict[int, BulkAssociationResult] = {}
    groups: dict[tuple[str, str], list[tuple[int, AssociationInput]]] = {}
    for index, item in enumerate(payload.inputs):
        groups.setdefault((item["fromObjectType"], item["toObjectType"]), []).append((index, item))
    for (from_key, to_key), items in groups.items():
        try:
            from_type = await resolve_object_type(session, account_id, from_key)
            to_type = await resolve_object_type(session, account_id, to_key)
            pair = await links.pair_types(session, account_id, from_type, to_type)
        except HubSpotError as exc:
            results.update({i: {"index": i, "status": "ERROR", "error": exc.message} for i, _ in items})
            continue
        requests = []
        for index, item in items:
            try:
                type_id = item.get("associationTypeId")
                kinds = [] if type_id is None else [pair.get(item.get("associationCategory", "HUBSPOT_DEFINED"),
                                                             type_id)]
                requests.append(links.PairRequest(
                    index=index, from_id=parse_id(item["fromId"], field=f"inputs[{index}].fromId"),
                    to_id=parse_id(item["toId"], field=f"inputs[{index}].toId"), kinds=kinds))
            except (HubSpotError, ValueError) as exc:
                results[index] = {"index": index, "status": "ERROR", "error": getattr(exc, "message", str(exc))}
        before = await repository.associations_between_pairs(session, account_id,
                                                             [(r.from_id, r.to_id) for r in requests])
        outcome = await links.add_many(session, account_id=account_id, pair=pair, requests=requests,
                                       source=source)
        for r in requests:
            if r.index in outcome.errors:
                results[r.index] = {"index": r.index, "status": "ERROR", "error": outcome.errors[r.index]}
                continue
            had = set(before.get((r.from_id, r.to_id), []))
            now_has = {(k.category, k.type_id) for k in outcome.labels.get(r.index, [])}
            results[r.index] = {"index": r.index, "status": "CREATED" if now_has - had else "EXISTS"}
    return {"results": [results[i] for i in sorted(results)]}


async def _answer_once(request: Request, session: AsyncSession, account_id: int, key: str | None,
                       write: Callable[[], Awaitable[Any]]) -> Response:
    """The write's answer; with a key, the answer stored with it by an earlier call (nothing written again)."""
    if key is not None:
        stored = await repository.stored_answer(session, account_id, key)
        if stored is not None:
            return Response(stored, media_type="application/json")
    answer = orjson.dumps(await write())
    if key is not None:
        await repository.store_answer(session, account_id, key, answer,
                                      retention_hours=request.app.state.runtime.settings.batch_answer_retention_hours)
    return Response(answer, media_type="application/json")


@router.get("/operations/{operationId}/journal", response_model=JournalPage, responses=error_responses(400, 401),
            summary="The journal of one operation")
async def operation_journal(operationId: str, auth: Auth, session: Session, after: int = 0, limit: int = 1000) -> Any:
    limit = max(1, min(limit, 10_000))
    rows = await repository.journal_page(session, auth.account_id, operationId, after=after, limit=limit + 1)
    results: list[JournalEntry] = [{"id": str(r["id"]), "recordId": str(r["record_id"]), "objectTypeId": r["object_type_id"],
                "kind": r["kind"], "oldValues": r["old_values"], "newValues": r["new_values"],
                "association": r["association"], "createdAt": timestamp_or_none(r["created_at"]),
                "undoneAt": timestamp_or_none(r["undone_at"])} for r in rows[:limit]]
    body: dict[str, Any] = {"results": results}
    if len(rows) > limit:
        body["paging"] = {"next": {"after": str(rows[limit - 1]["id"])}}
    return FastJSONResponse(body)


@router.post("/operations/{operationId}/undo", response_model=UndoReport, responses=error_responses(400, 401),
             summary="Undo an operation, reporting values changed since")
async def undo(operationId: str, auth: Auth, session: Session, payload: UndoRequest | None = None) -> Any:
    report = await undo_operation(session, account_id=auth.account_id, operation_id=operationId,
                                  source_type=(payload or UndoRequest()).sourceType)
    return FastJSONResponse(report.as_json())


@router.get("/records/{objectType}/{recordId}/snapshot", response_model=RecordSnapshot,
            responses=error_responses(400, 401, 404),
            summary="A record with all its values, history and associations (merge planning and unmerge)")
async def record_snapshot(objectType: str, recordId: int, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    return FastJSONResponse(await merges.snapshot(session, account_id=auth.account_id, object_type=object_type,
                                                record_id=recordId))


@router.post("/merges/apply", response_model=MergeApplyResponse, responses=error_responses(400, 401, 404, 409),
             summary="Apply a merge plan atomically (two records or a cluster): new record, moved associations, aliases")
async def merge_apply(payload: MergeApplyRequest, auth: Auth, session: Session, request: Request) -> Any:
    async def apply() -> dict[str, Any]:
        object_type = await resolve_object_type(session, auth.account_id, payload.objectType)
        return await merges.apply_merge(
            session, account_id=auth.account_id, object_type=object_type, merge_id=payload.mergeId,
            primary_id=payload.primaryId, secondary_ids=_either(payload.secondaries), properties=payload.properties)

    # A merge applies once: sent again (its answer was lost), it answers what it did the first time.
    return await _answer_once(request, session, auth.account_id, f"merges/apply/{payload.mergeId}", apply)


@router.post("/merges/unapply", response_model=MergeUnapplyResponse,
             responses=error_responses(400, 401, 404, 409),
             summary="Restore both originals of a merge, keeping later edits")
async def merge_unapply(payload: MergeUnapplyRequest, auth: Auth, session: Session, request: Request) -> Any:
    async def unapply() -> dict[str, Any]:
        object_type = await resolve_object_type(session, auth.account_id, payload.objectType)
        return await merges.unapply_merge(
            session, account_id=auth.account_id, object_type=object_type, merge_id=payload.mergeId,
            merged_id=payload.mergedId, primary_snapshot=payload.primary,
            secondary_snapshots=_either(payload.secondary_snapshots))

    return await _answer_once(request, session, auth.account_id, f"merges/unapply/{payload.mergeId}", unapply)


def _either(secondaries: Callable[[], list[Any]]) -> list[Any]:
    """The secondary (HubSpot's merge) or secondaries (a cluster merge) of a merge body."""
    try:
        return secondaries()
    except ValueError as exc:
        raise HubSpotError(400, str(exc)) from None

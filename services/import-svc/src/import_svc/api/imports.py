"""HubSpot's imports API (`/crm/v3/imports`) plus Corral's revert, preview and error file."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import uuid
from pathlib import Path
from typing import Any

import orjson
from crm_common.errors import HubSpotError, error_responses, not_found
from crm_common.inputs import check_text, parse_after, parse_id
from crm_common.object_types import STANDARD_OBJECT_TYPES
from crm_common.responses import FastJSONResponse
from crm_common.timestamps import timestamp_or_none
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from import_svc import repository, service
from import_svc.api.deps import Auth, Resources, Session, resources_of
from import_svc.domain.plan import InvalidImportRequest, parse_plan
from import_svc.domain.values import formula_safe
from import_svc.files import MAX_BYTES

router = APIRouter(tags=["Imports"])
corral_router = APIRouter(prefix="/corral/v1/imports", tags=["Imports (Corral)"])

OBJECT_TYPE_NAMES = {t.id: t.import_name for t in STANDARD_OBJECT_TYPES}
MAX_FILES = 10


def _import_id(raw: str) -> int:
    return parse_id(raw, field="importId", what="import id")


def import_json(row: dict[str, Any], file_ids: list[int], counters: dict[str, int] | None = None) -> dict[str, Any]:
    live = counters if counters is not None else row["counters"]
    return {
        "id": str(row["id"]),
        "state": row["state"],
        "importName": row["name"],
        "importSource": "API",
        "createdAt": timestamp_or_none(row["created_at"]),
        "updatedAt": timestamp_or_none(row["updated_at"]),
        "optOutImport": False,
        "mappedObjectTypeIds": list(row["mapped_object_type_ids"]),
        "importRequestJson": row["request"],
        "metadata": {"counters": {k: int(v) for k, v in (live or {}).items()},
                     "fileIds": [str(f) for f in file_ids], "objectLists": []},
        # Corral: why a FAILED import stopped (HubSpot's API gives no reason; the SDK ignores the field).
        **({"failureReason": row["failure"]} if row["state"] == "FAILED" and row.get("failure") else {}),
    }


async def _with_live_counters(session: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    files = await repository.file_ids(session, ids)
    live = await repository.live_counters(session, ids)
    return [import_json(r, files.get(r["id"], []), live.get(r["id"]) if r["state"] not in ("DONE", "FAILED",
                                                                                           "CANCELED", "REVERTED")
                        else None) for r in rows]


def _store_dir(request: Request) -> Path:
    return Path(request.app.state.runtime.settings.file_store_dir)


@router.post("/crm/v3/imports", response_model=None, responses=error_responses(400, 401, 403, 413),
             summary="Start a new import")
async def start_import(request: Request, auth: Auth, session: Session) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FILES * MAX_BYTES:
        raise service.too_big()
    # starlette spools each file part to a temporary file past 1 MB: an upload is never held in memory.
    form = await request.form(max_files=MAX_FILES, max_fields=20)
    try:
        raw_request = form.get("importRequest")
        if raw_request is None:
            raise HubSpotError(400, "The importRequest part is missing", category="VALIDATION_ERROR")
        if isinstance(raw_request, UploadFile):
            raw_request = (await raw_request.read()).decode("utf-8")
        try:
            request_json = orjson.loads(raw_request)
            check_text(request_json, root="importRequest")
            plan = parse_plan(request_json)
        except orjson.JSONDecodeError as exc:
            raise HubSpotError(400, f"Invalid input JSON in importRequest: {exc}", category="VALIDATION_ERROR") \
                from None
        except InvalidImportRequest as exc:
            raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
        uploads = {os.path.basename(f.filename or ""): f for f in form.getlist("files") if isinstance(f, UploadFile)}
        if not uploads:
            raise HubSpotError(400, "No files were uploaded: send one `files` part per file", category="VALIDATION_ERROR")
        store = _store_dir(request) / str(auth.account_id) / uuid.uuid4().hex
        files = await service.store_files(plan=plan, uploads=uploads, store=store)
    finally:
        await form.close()
    row, file_ids, counters = await service.start_import(
        session, account_id=auth.account_id, plan=plan, request_json=request_json, files=files,
        max_processing_per_account=request.app.state.runtime.settings.max_processing_per_account)
    worker = resources_of(request).worker
    if worker is not None:
        # The unit of work commits as this returns; the worker looks a moment later.
        asyncio.get_running_loop().call_later(0.05, worker.wake)
    return FastJSONResponse(import_json(row, file_ids, counters))


@router.get("/crm/v3/imports", response_model=None, responses=error_responses(400, 401, 403),
            summary="List imports")
async def list_imports(auth: Auth, session: Session, after: str | None = None, before: str | None = None,
                       limit: int = Query(default=100, ge=1, le=1000)) -> Any:
    after_id = parse_after(after) or None
    before_id = parse_after(before, field="before") or None
    rows = await repository.list_imports(session, auth.account_id, after=after_id, before=before_id,
                                         limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    body: dict[str, Any] = {"results": await _with_live_counters(session, rows)}
    if more:
        body["paging"] = {"next": {"after": str(rows[-1]["id"]),
                                   "link": f"/crm/v3/imports/?after={rows[-1]['id']}&limit={limit}"}}
    return FastJSONResponse(body)


@router.get("/crm/v3/imports/{importId}", response_model=None, responses=error_responses(401, 403, 404),
            summary="Get the status of an import")
async def get_import(importId: str, auth: Auth, session: Session) -> Any:
    row = await repository.get_import(session, auth.account_id, _import_id(importId))
    if row is None:
        raise not_found(f"Import {importId} not found")
    return FastJSONResponse((await _with_live_counters(session, [row]))[0])


@router.post("/crm/v3/imports/{importId}/cancel", response_model=None, responses=error_responses(401, 403, 404),
             summary="Cancel an active import")
async def cancel_import(importId: str, auth: Auth, session: Session) -> Any:
    row, requested = await service.cancel_import(session, account_id=auth.account_id, import_id=_import_id(importId),
                                                 raw_id=importId)
    return FastJSONResponse({"status": "COMPLETE", "requestedAt": timestamp_or_none(requested),
                           "startedAt": timestamp_or_none(row["started_at"] or row["created_at"]),
                           "completedAt": timestamp_or_none(row["completed_at"] or requested), "links": {}})


def _error_json(row: dict[str, Any], include_message: bool, include_row: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "createdAt": int(row["created_at"].timestamp() * 1000),
        "errorType": row["error_type"],
        "sourceData": {"rowData": list(row["row_data"]) if include_row else [], "lineNumber": row["line_number"],
                       "fileId": row["file_id"], "containsEncryptedProperties": False},
    }
    if include_message:
        out["errorMessage"] = row["message"]
    if row["invalid_value"] is not None:
        out["invalidValue"] = row["invalid_value"]
    if row["column_number"] is not None:
        out["knownColumnNumber"] = row["column_number"] + 1
    if row["object_type_id"]:
        out["objectTypeId"] = row["object_type_id"]
        if row["object_type_id"] in OBJECT_TYPE_NAMES:
            out["objectType"] = OBJECT_TYPE_NAMES[row["object_type_id"]]
    return out


@router.get("/crm/v3/imports/{importId}/errors", response_model=None, responses=error_responses(400, 401, 403, 404),
            summary="Get the errors of an import")
async def import_errors(importId: str, auth: Auth, session: Session, after: str | None = None,
                        limit: int = Query(default=100, ge=1, le=1000), includeErrorMessage: bool = False,
                        includeRowData: bool = False) -> Any:
    row = await repository.get_import(session, auth.account_id, _import_id(importId))
    if row is None:
        raise not_found(f"Import {importId} not found")
    after_id = parse_after(after)
    rows = await repository.list_errors(session, row["id"], after=after_id, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    body: dict[str, Any] = {"results": [_error_json(r, includeErrorMessage, includeRowData) for r in rows]}
    if more:
        body["paging"] = {"next": {"after": str(rows[-1]["id"]),
                                   "link": f"/crm/v3/imports/{importId}/errors?after={rows[-1]['id']}"}}
    return FastJSONResponse(body)


@router.post("/crm/v3/imports/{importId}/revert", response_model=None, responses=error_responses(400, 401, 403, 404, 409),
             summary="Revert an import (Corral): delete what it created, restore what it overwrote")
async def revert_import(importId: str, auth: Auth, resources: Resources, request: Request) -> Any:
    row, file_ids, outcome = await service.revert_import(request.app.state.runtime.sessionmaker, resources.records,
                                                         account_id=auth.account_id, import_id=_import_id(importId),
                                                         raw_id=importId)
    body = import_json(row, file_ids)
    body["revert"] = outcome
    return FastJSONResponse(body)


@corral_router.get("/{importId}/errors.csv", responses=error_responses(401, 403, 404),
                   summary="Download an import's errors as CSV (formula-safe)")
async def errors_csv(importId: str, auth: Auth, session: Session) -> Response:
    row = await repository.get_import(session, auth.account_id, _import_id(importId))
    if row is None:
        raise not_found(f"Import {importId} not found")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Line number", "Column number", "Column", "Object type", "Error type", "Message",
                     "Invalid value", "Row data"])
    after = 0
    while True:
        errors = await repository.list_errors(session, row["id"], after=after, limit=5000)
        if not errors:
            break
        for e in errors:
            cells = [str(e["line_number"]), str(e["column_number"] + 1) if e["column_number"] is not None else "",
                     e["column_name"] or "", OBJECT_TYPE_NAMES.get(e["object_type_id"] or "", e["object_type_id"] or ""),
                     e["error_type"], e["message"], e["invalid_value"] or "",
                     " | ".join(str(c) for c in e["row_data"])]
            writer.writerow([formula_safe(c) for c in cells])
        after = errors[-1]["id"]
    name = f"import-{row['id']}-errors.csv"
    return Response(buffer.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})

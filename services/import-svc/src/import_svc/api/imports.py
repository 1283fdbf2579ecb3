"""HubSpot's imports API (`/crm/v3/imports`) plus Corral's revert, preview and error file."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from crm_common.contracts.records import RecordsClient, ServiceCallError
from crm_common.errors import HubSpotError, error_responses, not_found
from crm_common.inputs import check_text, parse_after, parse_id
from crm_common.object_types import STANDARD_OBJECT_TYPES
from crm_common.observability import tracing
from crm_common.outbox import add_event
from crm_common.responses import FastJSONResponse
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from import_svc import metrics, repository
from import_svc.api.deps import Auth, Session
from import_svc.files import MAX_BYTES, FileProblem, inspect
from import_svc.plan import InvalidImportRequest, parse_plan
from import_svc.values import formula_safe
from import_svc.worker import import_event

router = APIRouter(tags=["Imports"])
corral_router = APIRouter(prefix="/corral/v1/imports", tags=["Imports (Corral)"])

OBJECT_TYPE_NAMES = {t.id: t.import_name for t in STANDARD_OBJECT_TYPES}
MAX_FILES = 10


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _import_id(raw: str) -> int:
    return parse_id(raw, field="importId", what="import id")


def import_json(row: dict[str, Any], file_ids: list[int], counters: dict[str, int] | None = None) -> dict[str, Any]:
    live = counters if counters is not None else row["counters"]
    return {
        "id": str(row["id"]),
        "state": row["state"],
        "importName": row["name"],
        "importSource": "API",
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
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


def _copy_upload(upload: UploadFile, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    with dest.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return dest.stat().st_size


def _too_big() -> HubSpotError:
    return HubSpotError(400, "File size exceeds the maximum of 512 MB. Split the file into smaller files.",
                        category="VALIDATION_ERROR", errors=[{"message": "File too large", "code": "FILE_TOO_LARGE"}])


@router.post("/crm/v3/imports", response_model=None, responses=error_responses(400, 401, 403, 413),
             summary="Start a new import")
async def start_import(request: Request, auth: Auth, session: Session) -> Any:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FILES * MAX_BYTES:
        raise _too_big()
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
        stored: list[tuple[Any, Path, int, str]] = []
        total_rows = 0
        try:
            for file_plan in plan.files:
                upload = uploads.get(file_plan.file_name) or uploads.get(os.path.basename(file_plan.file_name))
                if upload is None and len(plan.files) == 1 and len(uploads) == 1:
                    upload = next(iter(uploads.values()))
                if upload is None:
                    raise HubSpotError(400, f"No uploaded file matches fileName {file_plan.file_name}: the file "
                                       f"part's name must be the fileName", category="VALIDATION_ERROR")
                dest = store / f"{file_plan.position}-{os.path.basename(file_plan.file_name) or 'file'}"
                size = await asyncio.to_thread(_copy_upload, upload, dest)
                if size > MAX_BYTES:
                    raise _too_big()
                try:
                    layout = await asyncio.to_thread(inspect, dest, file_plan.file_name, file_plan.file_format)
                except FileProblem as exc:
                    raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
                total_rows += layout.data_rows
                if file_plan.has_header and layout.header:
                    known = {h.strip().lower() for h in layout.header}
                    missing = [c.name for c in file_plan.columns if c.name and c.name.lower() not in known]
                    if missing and len(file_plan.columns) != len(layout.header):
                        raise HubSpotError(400, f"Column mappings do not match the file's header: "
                                           f"{', '.join(missing)} not found in {file_plan.file_name}",
                                           category="VALIDATION_ERROR")
                stored.append((file_plan, dest, size, layout.file_format))
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, store, True)
            raise
    finally:
        await form.close()
    state = "STARTED"
    if await repository.active_count(session, auth.account_id) >= request.app.state.runtime.settings.max_processing_per_account:
        state = "DEFERRED"
    counters = {"TOTAL_ROWS": total_rows}
    row = await repository.insert_import(session, account_id=auth.account_id, name=plan.name, state=state,
                                         request=request_json, mapped=plan.mapped_object_type_ids(), counters=counters,
                                         trace_parent=tracing.current_traceparent())
    file_ids = []
    for file_plan, dest, size, file_format in stored:
        file_ids.append(await repository.insert_file(session, import_id=row["id"], position=file_plan.position,
                                                     file_name=file_plan.file_name, path=str(dest.resolve()),
                                                     size=size, file_format=file_format))
    worker = request.app.state.runtime.extras.get("worker")
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
    row = await repository.get_import(session, auth.account_id, _import_id(importId), for_update=True)
    if row is None:
        raise not_found(f"Import {importId} not found")
    requested = datetime.now(UTC)
    if row["state"] in repository.RUNNABLE_STATES:
        checkpoint = await repository.get_checkpoint(session, row["id"])
        row = await repository.set_state(session, row["id"], "CANCELED", completed=True,
                                         counters=checkpoint["counters"])
        await add_event(session, import_event("import.canceled", row, counters=checkpoint["counters"]))
        metrics.FINISHED.labels("CANCELED").inc()
    return FastJSONResponse({"status": "COMPLETE", "requestedAt": iso(requested),
                           "startedAt": iso(row["started_at"] or row["created_at"]),
                           "completedAt": iso(row["completed_at"] or requested), "links": {}})


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
async def revert_import(importId: str, auth: Auth, request: Request) -> Any:
    runtime = request.app.state.runtime
    records: RecordsClient = runtime.extras["records"]
    async with runtime.sessionmaker() as session, session.begin():
        row = await repository.get_import(session, auth.account_id, _import_id(importId))
        if row is None:
            raise not_found(f"Import {importId} not found")
        if row["state"] in ("STARTED", "DEFERRED", "PROCESSING"):
            raise HubSpotError(409, "The import is still running: cancel it first, then revert it",
                               category="CONFLICT")
        if row["state"] == "REVERTED":
            raise HubSpotError(409, "The import was reverted already", category="CONFLICT")
    try:
        outcome = (await records.undo(auth.account_id, f"import:{row['id']}")).model_dump()
    except ServiceCallError as exc:
        raise HubSpotError(502 if exc.status >= 500 else 400, f"The revert failed: {exc.message}") from None
    async with runtime.sessionmaker() as session, session.begin():
        row = await repository.set_state(session, row["id"], "REVERTED")
        await add_event(session, import_event("import.reverted", row, result=outcome))
        body = (await _with_live_counters(session, [row]))[0]
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

"""Mapping help: suggested column mappings and validation of the first rows (or, as a dry run, all rows).

HubSpot shows the first 3 rows validated before an import starts; `?dryRun=true` checks every row
without writing anything, with the same conversions the import applies.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from crm_common.contracts.records import RecordsClient, ServiceCallError
from crm_common.errors import HubSpotError, error_responses
from crm_common.object_types import CONTACT
from crm_common.responses import FastJSONResponse
from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from import_svc.api.deps import Auth, resources_of
from import_svc.domain.error_types import import_error_type
from import_svc.domain.mapping import check_cell, suggest
from import_svc.domain.plan import InvalidImportRequest, object_type_id
from import_svc.domain.values import DATE_FORMATS, guess_date_format, number_format_for, zone
from import_svc.files import MAX_BYTES, FileProblem, batches, inspect, iter_rows
from import_svc.service import copy_upload, too_big

router = APIRouter(prefix="/corral/v1/imports", tags=["Imports (Corral)"])

PREVIEW_ROWS = 3
DRY_RUN_ERROR_LIMIT = 1000


def _check_row(line: int, cells: list[str], width: int, mapped: list[tuple[int, dict[str, Any]] | None],
               options: dict[str, Any]) -> list[dict[str, Any]]:
    if len(cells) > width and not any(c.strip() for c in cells[width:]):
        cells = cells[:width]
    if len(cells) != width:
        return [{"lineNumber": line, "errorType": "INCORRECT_NUMBER_OF_COLUMNS",
                 "errorMessage": f"Row has {len(cells)} columns but the header has {width}"}]
    errors = []
    for index, target in enumerate(mapped):
        if target is None:
            continue
        _, prop = target
        problem = check_cell(cells[index], prop, **options)
        if problem:
            errors.append({"lineNumber": line, "knownColumnNumber": index + 1, "errorType": import_error_type(problem[0]),
                           "errorMessage": problem[1], "invalidValue": cells[index],
                           "propertyName": prop.get("name")})
    return errors


@router.post("/preview", response_model=None, responses=error_responses(400, 401, 403),
             summary="Suggest column mappings and validate the first rows (or all rows with dryRun)")
async def preview(request: Request, auth: Auth, dryRun: bool = False) -> Any:
    runtime = request.app.state.runtime
    records: RecordsClient = resources_of(request).records
    form = await request.form(max_files=1, max_fields=20)
    try:
        upload = form.get("file") or form.get("files")
        if not isinstance(upload, UploadFile):
            raise HubSpotError(400, "Send the file as a multipart part named `file`", category="VALIDATION_ERROR")
        file_name = os.path.basename(upload.filename or "file.csv")
        raw_types = [str(v) for v in form.getlist("objectType")] or [CONTACT]
        try:
            type_ids = [t for raw in raw_types for part in raw.split(",") if (t := object_type_id(part.strip()))]
        except InvalidImportRequest as exc:
            raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
        language = str(form.get("headerLanguage") or "") or None
        date_format = str(form.get("dateFormat") or "").upper() or None
        if date_format and date_format not in DATE_FORMATS:
            raise HubSpotError(400, f"dateFormat must be one of {', '.join(DATE_FORMATS)}", category="VALIDATION_ERROR")
        number_format = number_format_for(form.get("numberFormat") or form.get("countryCode"))
        time_zone = zone(str(form.get("timeZone") or "") or None)
        work = Path(runtime.settings.file_store_dir) / "previews" / uuid.uuid4().hex
        dest = work / file_name
        size = await asyncio.to_thread(copy_upload, upload, dest)
    finally:
        await form.close()
    try:
        if size > MAX_BYTES:
            raise too_big()
        try:
            layout = await asyncio.to_thread(inspect, dest, file_name, None)
            first_rows = await asyncio.to_thread(_head, dest, layout)
        except FileProblem as exc:
            raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
        try:
            catalogs = {t: await records.properties(auth.account_id, t) for t in type_ids}
        except ServiceCallError as exc:
            raise HubSpotError(400 if exc.status < 500 else 502, exc.message) from None
        header = layout.header or []
        width = len(header)
        columns = []
        mapped: list[tuple[int, dict[str, Any]] | None] = []
        mappings = []
        for index, name in enumerate(header):
            suggestion = suggest(name, catalogs, language)
            samples = [cells[index] for _, cells in first_rows if index < len(cells)]
            columns.append({"columnNumber": index + 1, "columnName": name, "suggestion": suggestion,
                            "sampleValues": samples})
            if suggestion:
                prop = catalogs[suggestion["columnObjectTypeId"]][suggestion["propertyName"]]
                mapped.append((index, prop))
                mappings.append({"columnName": name, "columnObjectTypeId": suggestion["columnObjectTypeId"],
                                 "propertyName": suggestion["propertyName"]})
            else:
                mapped.append(None)
                mappings.append({"columnName": name, "ignored": True})
        if date_format is None:
            date_samples = [cells[i] for i, target in enumerate(mapped) if target and
                            target[1].get("type") in ("date", "datetime") for _, cells in first_rows
                            if i < len(cells) and cells[i].strip()]
            date_format = (guess_date_format(date_samples) if date_samples else None) or "MONTH_DAY_YEAR"
        options = {"date_format": date_format, "number_format": number_format, "time_zone": time_zone}
        rows = [{"lineNumber": line, "values": cells, "errors": _check_row(line, cells, width, mapped, options)}
                for line, cells in first_rows]
        body: dict[str, Any] = {
            "fileName": file_name, "fileFormat": layout.file_format, "encoding": layout.encoding,
            "delimiter": layout.delimiter, "totalRows": layout.data_rows, "dateFormat": date_format,
            "objectTypeIds": type_ids, "columns": columns, "columnMappings": mappings, "rows": rows,
            "warnings": layout.warnings,
        }
        if dryRun:
            try:
                body["dryRun"] = await asyncio.to_thread(_dry_run, dest, layout, width, mapped, options)
            except FileProblem as exc:  # a spreadsheet is read whole only here (a cell too long, a cut file)
                raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
        return FastJSONResponse(body)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def _head(path: Path, layout: Any) -> list[tuple[int, list[str]]]:
    out = []
    rows = iter_rows(path, layout)
    next(rows, None)
    for row in rows:
        out.append(row)
        if len(out) >= PREVIEW_ROWS:
            break
    return out


def _dry_run(path: Path, layout: Any, width: int, mapped: list[tuple[int, dict[str, Any]] | None],
             options: dict[str, Any]) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    bad_rows = 0
    checked = 0
    for batch in batches(path, layout, size=10_000):
        for line, cells in batch:
            checked += 1
            found = _check_row(line, cells, width, mapped, options)
            if found:
                bad_rows += 1
                counts.update(e["errorType"] for e in found)
                room = DRY_RUN_ERROR_LIMIT - len(errors)
                if room > 0:
                    errors.extend(found[:room])
    return {"rowsChecked": checked, "rowsWithErrors": bad_rows, "errorCounts": dict(counts), "errors": errors,
            "errorsTruncated": sum(counts.values()) > len(errors)}

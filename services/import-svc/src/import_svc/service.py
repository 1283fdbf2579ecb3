"""Import use cases: start (store and check the files, write the import), cancel, revert.

The routes in `api/imports.py` read the HTTP request and shape the answers; what happens to an import
happens here. Use cases write through the caller's session and never commit: the request's unit of
work does (revert, which calls records-svc between two transactions, opens its own).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm_common.contracts.records import RecordsClient, ServiceCallError
from crm_common.errors import HubSpotError, not_found
from crm_common.observability import tracing
from crm_common.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import UploadFile

from import_svc import metrics, repository
from import_svc.domain.plan import FilePlan, ImportPlan
from import_svc.events import import_event
from import_svc.files import MAX_BYTES, FileProblem, inspect


@dataclass
class StoredFile:
    """An uploaded file, copied into the file store and inspected."""

    plan: FilePlan
    path: Path
    size: int
    file_format: str
    data_rows: int


def copy_upload(upload: UploadFile, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    upload.file.seek(0)
    with dest.open("wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return dest.stat().st_size


def too_big() -> HubSpotError:
    return HubSpotError(400, "File size exceeds the maximum of 512 MB. Split the file into smaller files.",
                        category="VALIDATION_ERROR", errors=[{"message": "File too large", "code": "FILE_TOO_LARGE"}])


async def store_files(*, plan: ImportPlan, uploads: dict[str, UploadFile], store: Path) -> list[StoredFile]:
    """Each file the plan names, copied under `store` and inspected; nothing stays behind on a refusal."""
    stored: list[StoredFile] = []
    try:
        for file_plan in plan.files:
            upload = uploads.get(file_plan.file_name) or uploads.get(os.path.basename(file_plan.file_name))
            if upload is None and len(plan.files) == 1 and len(uploads) == 1:
                upload = next(iter(uploads.values()))
            if upload is None:
                raise HubSpotError(400, f"No uploaded file matches fileName {file_plan.file_name}: the file "
                                   f"part's name must be the fileName", category="VALIDATION_ERROR")
            dest = store / f"{file_plan.position}-{os.path.basename(file_plan.file_name) or 'file'}"
            size = await asyncio.to_thread(copy_upload, upload, dest)
            if size > MAX_BYTES:
                raise too_big()
            try:
                layout = await asyncio.to_thread(inspect, dest, file_plan.file_name, file_plan.file_format)
            except FileProblem as exc:
                raise HubSpotError(400, str(exc), category="VALIDATION_ERROR") from None
            if file_plan.has_header and layout.header:
                known = {h.strip().lower() for h in layout.header}
                missing = [c.name for c in file_plan.columns if c.name and c.name.lower() not in known]
                if missing and len(file_plan.columns) != len(layout.header):
                    raise HubSpotError(400, f"Column mappings do not match the file's header: "
                                       f"{', '.join(missing)} not found in {file_plan.file_name}",
                                       category="VALIDATION_ERROR")
            stored.append(StoredFile(plan=file_plan, path=dest, size=size, file_format=layout.file_format,
                                     data_rows=layout.data_rows))
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, store, True)
        raise
    return stored


async def start_import(session: AsyncSession, *, account_id: int, plan: ImportPlan, request_json: Any,
                       files: list[StoredFile], max_processing_per_account: int
                       ) -> tuple[dict[str, Any], list[int], dict[str, int]]:
    """The import row (STARTED, or DEFERRED while the account runs its most) and its file rows."""
    state = "STARTED"
    if await repository.active_count(session, account_id) >= max_processing_per_account:
        state = "DEFERRED"
    counters = {"TOTAL_ROWS": sum(f.data_rows for f in files)}
    row = await repository.insert_import(session, account_id=account_id, name=plan.name, state=state,
                                         request=request_json, mapped=plan.mapped_object_type_ids(), counters=counters,
                                         trace_parent=tracing.current_traceparent())
    file_ids = []
    for stored in files:
        file_ids.append(await repository.insert_file(session, import_id=row["id"], position=stored.plan.position,
                                                     file_name=stored.plan.file_name, path=str(stored.path.resolve()),
                                                     size=stored.size, file_format=stored.file_format))
    return row, file_ids, counters


async def cancel_import(session: AsyncSession, *, account_id: int, import_id: int, raw_id: str
                        ) -> tuple[dict[str, Any], datetime]:
    """Cancels a running import at its last checkpoint; an ended one stays as it is. `raw_id` names it in a 404."""
    row = await repository.get_import(session, account_id, import_id, for_update=True)
    if row is None:
        raise not_found(f"Import {raw_id} not found")
    requested = datetime.now(UTC)
    if row["state"] in repository.RUNNABLE_STATES:
        checkpoint = await repository.get_checkpoint(session, row["id"])
        row = await repository.set_state(session, row["id"], "CANCELED", completed=True,
                                         counters=checkpoint["counters"])
        await add_event(session, import_event("import.canceled", row, counters=checkpoint["counters"]))
        metrics.FINISHED.labels("CANCELED").inc()
    return row, requested


async def revert_import(sessionmaker: async_sessionmaker[AsyncSession], records: RecordsClient, *, account_id: int,
                        import_id: int, raw_id: str) -> tuple[dict[str, Any], list[int], dict[str, Any]]:
    """Has records-svc undo what the import wrote (by its journal), then marks it REVERTED.

    Returns the import row, its file ids and records-svc's report. No transaction is held across the
    records-svc call.
    """
    async with sessionmaker() as session, session.begin():
        row = await repository.get_import(session, account_id, import_id)
        if row is None:
            raise not_found(f"Import {raw_id} not found")
        if row["state"] in ("STARTED", "DEFERRED", "PROCESSING"):
            raise HubSpotError(409, "The import is still running: cancel it first, then revert it",
                               category="CONFLICT")
        if row["state"] == "REVERTED":
            raise HubSpotError(409, "The import was reverted already", category="CONFLICT")
    try:
        outcome = (await records.undo(account_id, f"import:{row['id']}")).model_dump()
    except ServiceCallError as exc:
        raise HubSpotError(502 if exc.status >= 500 else 400, f"The revert failed: {exc.message}") from None
    async with sessionmaker() as session, session.begin():
        row = await repository.set_state(session, row["id"], "REVERTED")
        await add_event(session, import_event("import.reverted", row, result=outcome))
        file_ids = (await repository.file_ids(session, [row["id"]])).get(row["id"], [])
    return row, file_ids, outcome

"""Settles merges left PENDING: merge-svc stopped between records-svc's answer and its own commit.

records-svc journals every applied merge under `merge:<id>`; its CREATE entry names the new record. Found:
the merge is recorded as APPLIED and `record.merged` is published (late, but never lost). Not found: the
apply never happened (or rolled back) and the merge is marked FAILED. A merge still in flight holds its
records' advisory locks, so rows whose locks are taken are skipped, and only rows older than the grace
period (longer than the records-svc call timeout) are looked at.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from crm_common.cloudevents import CloudEvent
from crm_common.contracts.records import JournalEntry, RecordsClient
from crm_common.db import transaction
from crm_common.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from merge_svc import repository
from merge_svc.service import SOURCE, secondaries_of

log = structlog.get_logger(__name__)


async def reconcile_pending(*, sessionmaker: async_sessionmaker[AsyncSession], records: RecordsClient,
                            older_than_seconds: float) -> dict[str, int]:
    """One pass; answers how many merges it settled each way."""
    settled = {"applied": 0, "failed": 0, "skipped": 0}
    async with transaction(sessionmaker) as session:
        candidates = await repository.stale_pending(session, older_than_seconds=older_than_seconds)
    for candidate in candidates:
        async with transaction(sessionmaker) as session:
            if not await repository.try_lock_records(session, candidate["account_id"],
                                                     [candidate["primary_id"], *secondaries_of(candidate)]):
                settled["skipped"] += 1
                continue
            row = await repository.lock_merge_row(session, candidate["id"])
            if row is None or row["status"] != "PENDING":
                continue
            created = await _merge_creation(records, account_id=row["account_id"], merge_id=row["id"])
            if created is None:
                await repository.mark_failed(session, merge_id=row["id"],
                                             error="records-svc never applied this merge (found PENDING)")
                settled["failed"] += 1
                continue
            new_id = str(created["recordId"])
            written = created.get("newValues") or {}
            merged_ids = [i for i in str(written.get("hs_merged_object_ids", "")).split(";") if i] or \
                [str(row["primary_id"]), *(str(i) for i in secondaries_of(row))]
            await repository.mark_applied(session, merge_id=row["id"], account_id=row["account_id"],
                                          object_type_id=row["object_type_id"], result_id=int(new_id),
                                          merged_ids=merged_ids)
            await add_event(session, CloudEvent(
                source=SOURCE, type="record.merged", subject=f"{row['object_type_id']}/{new_id}",
                corralaccount=row["account_id"],
                data={"objectType": row["object_type"], "objectTypeId": row["object_type_id"], "id": new_id,
                      "primaryId": str(row["primary_id"]), "secondaryId": str(row["secondary_id"]),
                      **({"secondaryIds": [str(i) for i in secondaries_of(row)]} if row.get("secondary_ids") else {}),
                      "mergedIds": merged_ids, "mergeId": str(row["id"]), "keepSyncing": str(row["primary_id"])}))
            settled["applied"] += 1
            log.warning("settled a pending merge", merge_id=row["id"], new_id=new_id)
    return settled


async def _merge_creation(records: RecordsClient, *, account_id: int, merge_id: int) -> JournalEntry | None:
    """The CREATE entry of records-svc's journal of one merge (`merge:<id>`): None when it never applied."""
    async for entry in records.journal(account_id, f"merge:{merge_id}"):
        if entry["kind"] == "CREATE":
            return entry
    return None


class PendingMergeReconciler:
    """Runs reconcile_pending every `interval` seconds in the service process."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], records: RecordsClient,
                 interval: float, grace: float) -> None:
        self._sessionmaker = sessionmaker
        self._records = records
        self._interval = interval
        self._grace = grace
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="merge-reconciler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await reconcile_pending(sessionmaker=self._sessionmaker, records=self._records,
                                        older_than_seconds=self._grace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # records-svc or the database away: next pass retries
                log.warning("pending-merge reconciliation failed", error=repr(exc))

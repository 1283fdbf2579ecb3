"""Duplicate scan jobs: durable (state and progress in Postgres, claimed with SKIP LOCKED, a silent worker's
job taken over), run in the merge-svc process.

A scan reads every record of the type from records-svc's export page by page, files each under its block
keys (the index the incremental path and the check use), trains and scores with splink in a worker thread,
and swaps the suggestions in one transaction: readers see the previous scan's suggestions until then.
The transaction holds the type's advisory lock, so events arriving meanwhile wait and are applied on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from crm_common.contracts.records import RecordsClient
from crm_common.db import transaction
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from merge_svc.domain import matching
from merge_svc.domain.clustering import connected_components
from merge_svc.domain.matching import MatchingSettings
from merge_svc.duplicates import linkage, repository
from merge_svc.metrics import DUPLICATE_SCANS

log = structlog.get_logger(__name__)

EXPORT_PAGE = 20_000


def _file(rows: list[list[Any]], names: list[str], settings: MatchingSettings
          ) -> list[tuple[int, dict[str, Any], str, list[str]]]:
    out = []
    for row in rows:
        values = matching.features(dict(zip(names, row[1:], strict=True)), settings)
        out.append((int(row[0]), values, matching.fingerprint(values), matching.block_keys(values, settings)))
    return out


async def run_scan(*, job: dict[str, Any], records: RecordsClient,
                   sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    account_id, type_id, job_id = job["account_id"], job["object_type_id"], job["id"]
    settings = MatchingSettings.from_json(job["settings"])
    names = settings.names()
    started = time.monotonic()
    progress: dict[str, Any] = {"recordsRead": 0, "recordsTotal": None}

    async def report(phase: str, **counts: Any) -> None:
        progress.update(counts)
        async with transaction(sessionmaker) as s:
            await repository.report_job(s, job_id, phase=phase, progress=progress)

    table = linkage.FeatureTable(settings)
    async with transaction(sessionmaker) as session:
        await repository.lock_type(session, account_id, type_id)
        await repository.clear_index(session, account_id, type_id)
        after, first = 0, True
        while True:
            page = await records.export_page(account_id, type_id, names,
                                             after=after, limit=EXPORT_PAGE, with_total=first)
            if first:
                progress["recordsTotal"] = page.total
                first = False
            filed = await asyncio.to_thread(_file, page.results, page.properties, settings)
            await repository.copy_index(session, account_id, type_id, filed)
            table.add((rid, values, keys) for rid, values, _, keys in filed)
            await report("READING", recordsRead=table.records)
            if page.paging is None:
                break
            after = int(page.paging.next.after)
        if table.records == 0:
            raise ScanError("There are no records of this object type to scan")
        await report("SCORING", recordsRead=table.records)
        result = await asyncio.to_thread(linkage.scan, table)
        await report("CLUSTERING", candidatePairs=result.candidate_pairs)
        dismissals = await repository.dismissed(session, account_id, type_id)
        if dismissals:
            involved = {i for pair in dismissals for i in pair}
            fingerprints = {rid: fp for rid, (_, fp) in
                            (await repository.indexed(session, account_id, type_id, sorted(involved))).items()}
            pairs = [p for p in result.pairs
                     if dismissals.get((p[0], p[1])) != (fingerprints.get(p[0]), fingerprints.get(p[1]))]
        else:
            pairs = result.pairs
        clusters = connected_components(pairs)
        await repository.clear_suggestions(session, account_id, type_id)
        await repository.copy_pairs(session, account_id, type_id, pairs)
        await repository.insert_clusters(session, account_id, type_id, clusters)
        await repository.put_model(session, account_id=account_id, object_type_id=type_id,
                                   settings=settings.as_json(), model=result.model.as_json(),
                                   splink_model=result.splink_model, job_id=job_id,
                                   scanned_from=job["started_at"])
        progress.update({"recordsRead": table.records, "candidatePairs": result.candidate_pairs,
                         "pairs": len(pairs), "clusters": len(clusters), "dismissedPairs": len(result.pairs) - len(pairs),
                         "seconds": round(time.monotonic() - started, 1)})
        await repository.finish_job(session, job_id, status="COMPLETE", progress=progress)
    return progress


class ScanError(Exception):
    pass


class ScanWorker:
    """Claims and runs scan jobs one at a time (a scan uses a core and up to a GB: one per process)."""

    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession], records: RecordsClient,
                 poll_seconds: float) -> None:
        self._sessionmaker = sessionmaker
        self._records = records
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="duplicate-scans")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                while await self.run_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: try again next round
                log.warning("duplicate scan loop failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            self._wake.clear()

    async def run_one(self) -> bool:
        """Run the next job, if any; True when one ran."""
        async with transaction(self._sessionmaker) as session:
            job = await repository.claim_job(session)
        if job is None:
            return False
        stop_heartbeat = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job["id"], stop_heartbeat))
        try:
            summary = await run_scan(job=job, records=self._records, sessionmaker=self._sessionmaker)
            log.info("duplicate scan complete", job_id=job["id"], **summary)
            DUPLICATE_SCANS.labels("complete").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("duplicate scan failed", job_id=job["id"], error=repr(exc))
            DUPLICATE_SCANS.labels("failed").inc()
            async with transaction(self._sessionmaker) as session:
                current = await repository.get_job(session, job["account_id"], job["id"])
                await repository.finish_job(session, job["id"], status="FAILED",
                                            progress=(current or {}).get("progress") or {},
                                            error=getattr(exc, "message", None) or str(exc) or repr(exc))
        finally:
            stop_heartbeat.set()
            with contextlib.suppress(Exception):
                await heartbeat
        return True

    async def _heartbeat(self, job_id: int, stop: asyncio.Event) -> None:
        """Keeps the job's heartbeat fresh while splink works in its thread (progress reports pause then)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=repository.STALE_JOB_SECONDS / 4)
            if not stop.is_set():
                with contextlib.suppress(Exception):
                    async with transaction(self._sessionmaker) as session:
                        await repository.touch_job(session, job_id)

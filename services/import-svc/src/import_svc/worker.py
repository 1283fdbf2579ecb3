"""The import worker: claims imports with FOR UPDATE SKIP LOCKED and runs them batch by batch.

A batch's error rows and the checkpoint after it (position + counters) commit together, so after
a crash the next owner starts at the first row that was not checkpointed. The records calls of that
batch may have happened already: they carry batch keys, records-svc answers them as it did the first
time, and the batch ends exactly as it would have. The batch size and the split of large calls are
pinned in the checkpoint when the import first runs, so every replay has the same rows and keys.

A worker holds a Postgres advisory lock for as long as its process lives. An import whose owner's lock
is free (the process was killed) is taken over at once by any worker, without waiting for its lease.
Claims go to the account running the fewest imports, and a full worker hands a running import back
after its batch when another account's import waits with none running, so no account starves another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import structlog
from crm_common.app import ServiceRuntime
from crm_common.contracts.records import RecordsClient, ServiceCallError
from crm_common.db import transaction
from crm_common.object_types import CONTACT
from crm_common.observability import tracing
from crm_common.outbox import add_event
from crm_common.settings import to_plain_url

from import_svc import metrics, repository
from import_svc.domain.plan import InvalidImportRequest, bind_columns, parse_plan
from import_svc.domain.values import number_format_for, zone
from import_svc.events import import_event
from import_svc.files import FileLayout, FileProblem, batches, inspect
from import_svc.pipeline import BoundFile, JobContext, process_batch
from import_svc.settings import Settings

log = structlog.get_logger(__name__)


class SimulatedCrash(Exception):
    """Raised by the fault-injection setting: the worker stops as if its process died."""


class ImportWorker:
    def __init__(self, runtime: ServiceRuntime, records: RecordsClient, settings: Settings) -> None:
        self.runtime = runtime
        self.records = records
        self.settings = settings
        self.owner = f"{settings.service_name}:{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self._stopping = False
        self._crashed = False
        self._sweeper: asyncio.Task[None] | None = None
        self._liveness: asyncpg.Connection | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="import-worker")
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="import-file-sweeper")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        tasks = [t for t in (self._task, self._sweeper, *self._running) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not self._crashed:
            # A graceful stop (a rolling deploy) hands its imports over at once instead of at lease expiry.
            with contextlib.suppress(Exception):
                async with transaction(self.runtime.sessionmaker) as session:
                    await repository.release_owned(session, self.owner)
        await self._drop_liveness()

    async def _hold_liveness(self) -> None:
        """This process's advisory lock, held on a connection of its own for as long as the process lives."""
        if self._liveness is not None and not self._liveness.is_closed():
            return
        self._liveness = await asyncpg.connect(to_plain_url(self.settings.database_url))
        await self._liveness.execute("SELECT pg_advisory_lock($1, hashtext($2))", repository.LIVENESS_LOCKS,
                                     self.owner)

    async def _drop_liveness(self) -> None:
        if self._liveness is not None:
            self._liveness.terminate()
            self._liveness = None

    def _crash(self) -> None:
        """Fault injection: die here, as a kill -9 would (the process itself, or this worker in a test)."""
        if self.settings.worker_crash_kills_process:
            os.kill(os.getpid(), signal.SIGKILL)
        raise SimulatedCrash()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._slots.acquire()
                try:
                    await self._hold_liveness()
                    async with transaction(self.runtime.sessionmaker) as session:
                        await repository.reclaim_from_dead_owners(session, owner=self.owner)
                        job = await repository.claim_next(
                            session, owner=self.owner, lease_seconds=self.settings.worker_lease_seconds,
                            per_account=self.settings.max_processing_per_account)
                        await repository.defer_waiting(session, self.settings.max_processing_per_account)
                        if job and job["first_start"]:
                            # Claimed outside any request: the event joins the trace that started the import.
                            await add_event(session, import_event("import.started", job,
                                                                  traceparent=job.get("trace_parent")))
                except BaseException:
                    self._slots.release()
                    raise
                if job is None:
                    self._slots.release()
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.settings.worker_poll_interval)
                    continue
                task = asyncio.create_task(self._run_guarded(job["id"]), name=f"import-{job['id']}")
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (the database went away: keep polling)
                log.warning("import worker loop error; retrying", error=repr(exc))
                await asyncio.sleep(self.settings.worker_poll_interval)

    async def _sweep_loop(self) -> None:
        while not self._stopping:
            try:
                removed = await self.sweep_files()
                if removed:
                    log.info("deleted the files of ended imports", files=removed,
                             retention_days=self.settings.file_retention_days)
                orphans = await self.sweep_orphan_uploads()
                if orphans:
                    log.info("deleted upload directories no import refers to", directories=orphans)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (the database went away: try again next round)
                log.warning("file sweep failed; retrying later", error=repr(exc))
            await asyncio.sleep(self.settings.file_sweep_interval)

    async def sweep_files(self) -> int:
        """Deletes the uploaded files of imports that ended more than the retention period ago.

        The import's row, counters, error rows (with their row data) and file rows stay, so its status,
        errors and error file still answer, and revert works from records-svc's journal alone. Each
        file's row is marked in the transaction that holds its lock, after the file is gone: a sweep
        that dies halfway leaves rows that the next sweep deletes again (a missing file is fine).
        """
        keep_seconds = self.settings.file_retention_days * 86_400
        removed = 0
        while True:
            async with transaction(self.runtime.sessionmaker) as session:
                files = await repository.expired_files(session, keep_seconds=keep_seconds, limit=500)
                if not files:
                    return removed
                await asyncio.to_thread(delete_stored_files, [Path(f["path"]) for f in files])
                await repository.mark_files_deleted(session, [f["id"] for f in files])
            removed += len(files)

    async def sweep_orphan_uploads(self) -> int:
        """Deletes upload directories no import refers to: a start call or a preview that died mid-way.

        Only directories untouched for ORPHAN_GRACE_SECONDS are looked at, far longer than any start
        call or preview holds one, so work in progress on any replica is never taken.
        """
        candidates = await asyncio.to_thread(idle_upload_dirs, Path(self.settings.file_store_dir),
                                             ORPHAN_GRACE_SECONDS)
        if not candidates:
            return 0
        async with transaction(self.runtime.sessionmaker) as session:
            known = await repository.known_file_paths(session, [p for _, files in candidates for p in files])
        orphans = [directory for directory, files in candidates if not known.intersection(files)]
        await asyncio.to_thread(lambda: [shutil.rmtree(d, ignore_errors=True) for d in orphans])
        return len(orphans)

    async def _run_guarded(self, import_id: int) -> None:
        try:
            async with transaction(self.runtime.sessionmaker) as session:
                started_by = await repository.trace_parent(session, import_id)
            # The worker's calls to records-svc, and the events of the records it writes, continue the
            # trace of the request that started the import (on whichever replica resumes it).
            with tracing.continued_span("import", traceparent=started_by, tracer_name="import_svc.worker",
                                        attributes={"corral.import.id": import_id}):
                await self.run(import_id)
        except SimulatedCrash:
            log.warning("simulated crash", import_id=import_id)
            self._stopping = True
            self._crashed = True
            for task in (self._task, self._sweeper, *self._running):
                if task and task is not asyncio.current_task():
                    task.cancel()
            await self._drop_liveness()
        except FileProblem as exc:
            # The file broke off part-way (the rows before were imported and stay): say where.
            log.warning("import file unreadable", import_id=import_id, error=str(exc))
            await self._fail(import_id, str(exc))
        except asyncio.CancelledError:
            raise
        except ServiceCallError as exc:
            if exc.transient:
                # records-svc is down, overloaded or failing on this batch: keep the checkpoint and let a
                # worker retry later; a batch it keeps failing on (500) fails the import in the end.
                log.warning("records-svc unavailable; import retried later", import_id=import_id, error=str(exc))
                await self._retry_later(import_id, failure=exc.message if exc.status == 500 else None)
            else:
                log.exception("import failed", import_id=import_id, error=repr(exc))
                await self._fail(import_id, f"records-svc refused a batch: {exc.message}")
        except Exception as exc:
            # The message names the failure, never its SQL or values (they are in the log).
            log.exception("import failed", import_id=import_id, error=repr(exc))
            await self._fail(import_id, f"Internal error ({type(exc).__name__}); the rows imported so far stay, "
                                        "and the service's log has the details")
        finally:
            self._slots.release()
            self._wake.set()

    async def _retry_later(self, import_id: int, *, failure: str | None) -> None:
        """Hands the import back for a later attempt, or fails it when records-svc kept failing on this batch."""
        async with transaction(self.runtime.sessionmaker) as session:
            if not await repository.lock_for_checkpoint(session, import_id, self.owner):
                return
            attempts = await repository.count_attempt(session, import_id, failed=failure is not None)
            if attempts < self.settings.worker_max_failed_attempts:
                await repository.release_lease(session, import_id, retry_in=self.settings.worker_retry_seconds)
                return
        await self._fail(import_id, f"records-svc failed {attempts} times on the same batch: {failure}")

    async def _fail(self, import_id: int, message: str) -> None:
        async with transaction(self.runtime.sessionmaker) as session:
            if not await repository.lock_for_checkpoint(session, import_id, self.owner):
                return
            checkpoint = await repository.get_checkpoint(session, import_id)
            row = await repository.set_state(session, import_id, "FAILED", completed=True, failure=message,
                                             counters=checkpoint["counters"])
            await add_event(session, import_event("import.failed", row, message=message,
                                                  counters=checkpoint["counters"]))
        metrics.FINISHED.labels("FAILED").inc()

    async def run(self, import_id: int) -> None:
        async with transaction(self.runtime.sessionmaker) as session:
            job = await repository.load_import(session, import_id)
            files = await repository.file_rows(session, import_id)
            checkpoint = await repository.get_checkpoint(session, import_id)
        assert job is not None
        try:
            plan = parse_plan(job["request"])
        except InvalidImportRequest as exc:
            await self._fail(import_id, str(exc))
            return
        if checkpoint["batch_size"] is None:
            # Pinned on the first run: a replay after a crash (or on a replica set up otherwise) cuts the same
            # batches and splits their calls alike, so every batch key names the same rows.
            checkpoint["batch_size"] = self.settings.worker_batch_size
            checkpoint["parallel_calls"] = self.settings.records_parallel_calls
            async with transaction(self.runtime.sessionmaker) as session:
                await repository.pin_batching(session, import_id, batch_size=checkpoint["batch_size"],
                                              parallel_calls=checkpoint["parallel_calls"])
        ctx = JobContext(import_id=import_id, account_id=job["account_id"], plan=plan, records=self.records,
                         catalogs={}, number_format=number_format_for(plan.number_format),
                         time_zone=zone(plan.time_zone), parallel_calls=checkpoint["parallel_calls"])
        try:
            await self._prepare_properties(ctx)
        except ServiceCallError as exc:
            if exc.transient:
                raise  # records-svc away: paused like any batch
            await self._fail(import_id, f"Could not read the properties: {exc.message}")
            return
        bound_files: list[BoundFile] = []
        for file_row, file_plan in zip(files, plan.files, strict=False):
            try:
                layout = await asyncio.to_thread(inspect, Path(file_row["path"]), file_row["file_name"],
                                                 file_row["file_format"], count_rows=False)
            except FileProblem as exc:
                await self._fail(import_id, str(exc))
                return
            bound_files.append(BoundFile(file_id=file_row["id"], plan=file_plan,
                                         columns=bind_columns(file_plan, layout.header if file_plan.has_header
                                                              else None), layout=layout, path=Path(file_row["path"])))
        # Files with the unique key of a linked import go first, so the other file's rows find them.
        ordered = sorted(bound_files, key=lambda b: (any(c.is_foreign_key for c in b.columns), b.plan.position))
        counters: Counter[str] = Counter(checkpoint["counters"])
        batches_done = int(checkpoint["batches"])
        for step, bound in enumerate(ordered):
            if step < checkpoint["file_position"]:
                continue
            skip = int(checkpoint["rows_done"]) if step == checkpoint["file_position"] else 0
            rows_done = skip
            iterator = batches(bound.path, bound.layout, size=checkpoint["batch_size"], skip_data_rows=skip,
                               has_header=bound.plan.has_header)
            upcoming = _read_ahead(iterator)
            while True:
                batch = await upcoming
                if batch is None:
                    break
                # The next batch is parsed (CSV, or an XLSX sheet's XML) while this one is written.
                upcoming = _read_ahead(iterator)
                batches_done += 1
                self._crash_point("before_call", batches_done)
                batch_started = time.perf_counter()
                with tracing.continued_span("import batch", traceparent=None, tracer_name="import_svc.worker",
                                            attributes={"corral.import.rows": len(batch)}):
                    outcome = await process_batch(ctx, bound, batch)
                metrics.count_batch(outcome.counters, time.perf_counter() - batch_started)
                self._crash_point("after_call", batches_done)
                counters.update(outcome.counters)
                rows_done += len(batch)
                async with transaction(self.runtime.sessionmaker) as session:
                    if not await repository.lock_for_checkpoint(session, import_id, self.owner):
                        log.info("import no longer ours (canceled or taken over); stopping", import_id=import_id)
                        return
                    await repository.insert_errors(session, import_id, outcome.errors)
                    await repository.save_checkpoint(session, import_id, file_position=step, rows_done=rows_done,
                                                     batches=batches_done, counters=dict(counters),
                                                     lease_seconds=self.settings.worker_lease_seconds)
                self._crash_point("after_checkpoint", batches_done)
                if await self._should_yield(import_id, job["account_id"]):
                    return
            async with transaction(self.runtime.sessionmaker) as session:
                if not await repository.lock_for_checkpoint(session, import_id, self.owner):
                    return
                await repository.save_checkpoint(session, import_id, file_position=step + 1, rows_done=0,
                                                 batches=batches_done, counters=dict(counters),
                                                 lease_seconds=self.settings.worker_lease_seconds)
        async with transaction(self.runtime.sessionmaker) as session:
            if not await repository.lock_for_checkpoint(session, import_id, self.owner):
                return
            row = await repository.set_state(session, import_id, "DONE", completed=True, counters=dict(counters))
            await add_event(session, import_event("import.completed", row, counters=dict(counters)))
        metrics.FINISHED.labels("DONE").inc()
        log.info("import done", import_id=import_id, counters=dict(counters))

    def _crash_point(self, stage: str, batch: int) -> None:
        if self.settings.worker_crash_after_batches == batch and self.settings.worker_crash_stage == stage:
            self._crash()

    async def _should_yield(self, import_id: int, account_id: int) -> bool:
        """Between batches, a full worker hands this import back when another account's import starves."""
        if not self._slots.locked():
            return False
        async with transaction(self.runtime.sessionmaker) as session:
            if not await repository.another_account_starves(session, account_id):
                return False
            if not await repository.lock_for_checkpoint(session, import_id, self.owner):
                return True
            await repository.release_lease(session, import_id, retry_in=0)
        log.info("import handed back for another account's turn", import_id=import_id)
        return True

    async def _prepare_properties(self, ctx: JobContext) -> None:
        """Each mapped type's properties, after creating the custom ones the request asks for."""
        for type_id in ctx.plan.mapped_object_type_ids():
            ctx.catalogs[type_id] = await self.records.properties(ctx.account_id, type_id)
        for file_plan in ctx.plan.files:
            for column in file_plan.columns:
                if (column.new_property is None or not column.is_property or column.property_name in
                        ctx.catalogs.get(column.object_type_id or "", {})):
                    continue
                spec = column.new_property
                definition = {"name": column.property_name, "label": spec.get("label") or column.name,
                              "type": spec.get("type", "string"), "fieldType": spec.get("fieldType", "text"),
                              "groupName": spec.get("groupName", "contactinformation" if column.object_type_id == CONTACT
                                                    else "companyinformation"),
                              **{k: v for k, v in spec.items() if k in ("options", "description", "hasUniqueValue")}}
                created = await self.records.create_property(ctx.account_id, column.object_type_id or "", definition,
                                                             exist_ok=True)
                ctx.catalogs.setdefault(column.object_type_id or "", {})[column.property_name or ""] = created


def _read_ahead(iterator: Iterator[list[tuple[int, list[str]]]]) -> asyncio.Future[list[tuple[int, list[str]]] | None]:
    """The iterator's next batch, read in a thread; a read left behind by a stopped job is retrieved, not raised."""
    future = asyncio.ensure_future(asyncio.to_thread(next, iterator, None))
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


# An upload directory untouched this long and named by no import_files row is left over from a start
# call or preview that died before its row was written (or after its files were swept).
ORPHAN_GRACE_SECONDS = 86_400.0


def idle_upload_dirs(store: Path, idle_seconds: float) -> list[tuple[Path, list[str]]]:
    """Upload directories (store/<account or "previews">/<hex>) not modified for idle_seconds, with their files."""
    if not store.is_dir():
        return []
    cutoff = time.time() - idle_seconds
    found = []
    for owner in store.iterdir():
        if not owner.is_dir():
            continue
        for upload in owner.iterdir():
            with contextlib.suppress(OSError):  # removed meanwhile by another replica's sweep
                if upload.is_dir() and upload.stat().st_mtime < cutoff:
                    found.append((upload, [str(p) for p in upload.iterdir()]))
    return found


def delete_stored_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        # Each import's files share a directory of their own; drop it with its last file.
        with contextlib.suppress(OSError):
            path.parent.rmdir()


def layout_for(path: Path, file_name: str, file_format: str) -> FileLayout:
    return inspect(path, file_name, file_format, count_rows=False)

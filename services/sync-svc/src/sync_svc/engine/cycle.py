"""The sync engine: one cycle of one account (outbound flush, inbound poll, retries), and the worker that runs
cycles for every account that has work.

Any replica may run the worker. A cycle holds a session-level advisory lock on the account for its whole
length, on a connection of its own: a second replica (or a `sync/run` request) waits or moves on, and a
replica that dies releases the lock with its connection. Every write a cycle makes is idempotent
(links, shadows, the queue rows it removes only if unchanged since read, create intents), so a cycle cut
short anywhere is finished by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from crm_common.db import transaction
from crm_common.outbox import add_events
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sync_svc.connector import Connector
from sync_svc.domain.budget import Budget
from sync_svc.domain.errors import ErrorCategory
from sync_svc.domain.objects import SYNC_OBJECT_TYPES
from sync_svc.engine import inbound, outbound
from sync_svc.engine.context import (
    Cycle,
    DirectionCounts,
    ObjectSetup,
    account_event,
    active_mappings,
    error_event,
)
from sync_svc.records import SyncRecords
from sync_svc.repositories import connections as connection_repo
from sync_svc.repositories import errors as error_repo
from sync_svc.repositories import mappings as mapping_repo
from sync_svc.repositories import queue as queue_repo
from sync_svc.repositories.errors import ErrorWrite
from sync_svc.salesforce.errors import (
    ApiLimitExceeded,
    LoginFailed,
    SalesforceApiError,
    SalesforceUnavailable,
    SessionRejected,
)
from sync_svc.settings import Settings

log = structlog.get_logger(__name__)
SOURCE = "sync-svc"
# A budget that is spent is looked at again this often (the rolling window frees calls minute by minute).
BUDGET_RECHECK = timedelta(minutes=5)


class SyncEngine:
    def __init__(self, *, settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession],
                 connector: Connector, records: SyncRecords) -> None:
        self.settings = settings
        self.db_engine = engine
        self.sessionmaker = sessionmaker
        self.connector = connector
        self.records = records
        self._clock_offsets: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- the worker ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sync-worker")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _loop(self) -> None:
        housekeeping_at = 0.0
        gate = asyncio.Semaphore(self.settings.worker_concurrency)

        async def one(account_id: int) -> None:
            async with gate:
                if not self._stopping:
                    await self.run(account_id, trigger="schedule", wait=False)

        while not self._stopping:
            try:
                async with self.sessionmaker() as db:
                    accounts = await connection_repo.due_accounts(
                        db, flush_age_seconds=self.settings.flush_interval_seconds)
                await asyncio.gather(*(one(a) for a in accounts))
                loop_time = asyncio.get_running_loop().time()
                if loop_time - housekeeping_at > 3600:
                    housekeeping_at = loop_time
                    async with transaction(self.sessionmaker) as db:
                        await connection_repo.forget_old_calls(db)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database went away: the next tick tries again
                log.warning("sync worker tick failed", error=repr(exc))
            await asyncio.sleep(self.settings.worker_tick_seconds)

    # -- one cycle -------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def account_lock(self, account_id: int, *, wait: bool) -> AsyncIterator[bool]:
        key = f"sync-cycle:{account_id}"
        async with self.db_engine.connect() as connection:
            if wait:
                await connection.execute(text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"), {"k": key})
                got = True
            else:
                got = bool((await connection.execute(
                    text("SELECT pg_try_advisory_lock(hashtextextended(:k, 0))"), {"k": key})).scalar())
            await connection.commit()
            try:
                yield got
            finally:
                if got:
                    with contextlib.suppress(Exception):
                        await connection.execute(text("SELECT pg_advisory_unlock(hashtextextended(:k, 0))"),
                                                 {"k": key})
                        await connection.commit()

    async def run(self, account_id: int, *, trigger: str, wait: bool = True, poll: bool | None = None,
                  only: tuple[str, list[int]] | None = None,
                  only_salesforce: tuple[str, list[str]] | None = None) -> dict[str, Any] | None:
        """One cycle; None when another replica is running this account's cycle (and `wait` is off).

        `poll`: None polls when due, True always, False never. `only`: sync just these Corral records of one
        object type (a resync), both ways, and nothing else; `only_salesforce`: the same for Salesforce ids.
        """
        async with self.account_lock(account_id, wait=wait) as got:
            if not got:
                return None
            return await self._cycle(account_id, trigger=trigger, poll=poll, only=only,
                                     only_salesforce=only_salesforce)

    async def _cycle(self, account_id: int, *, trigger: str, poll: bool | None,
                     only: tuple[str, list[int]] | None,
                     only_salesforce: tuple[str, list[str]] | None = None) -> dict[str, Any]:
        async with self.sessionmaker() as db:
            connection = await connection_repo.get(db, account_id)
            if connection is None or connection["status"] != "CONNECTED":
                return {"skipped": "NOT_CONNECTED", "inbound": {}, "outbound": {}, "apiCalls": 0}
            budget = await self.connector.budget(db, connection)
            setups = await self._setups(db, account_id)
        if budget.exhausted:
            await self._suspend(account_id, ErrorCategory.API_LIMIT,
                                f"The daily API budget of {budget.cap} calls is used up ({budget.used} in the last "
                                "24 hours); sync resumes as the window moves", until=datetime.now(UTC) + BUDGET_RECHECK)
            return {"skipped": "PAUSED_API_LIMIT", "inbound": {}, "outbound": {}, "apiCalls": 0}
        if connection.get("suspended") == ErrorCategory.API_LIMIT:
            until = connection.get("suspended_until")
            if until is not None and until > datetime.now(UTC) and trigger == "schedule":
                return {"skipped": "PAUSED_API_LIMIT", "inbound": {}, "outbound": {}, "apiCalls": 0}
            await self._resume(account_id, ErrorCategory.API_LIMIT)
        client = await self._client(connection, budget)
        cycle = Cycle(account_id=account_id, connection=connection, client=client, records=self.records,
                      sessionmaker=self.sessionmaker, settings=self.settings,
                      operation_id=f"salesforce-sync:{uuid.uuid4().hex[:12]}",
                      clock_offset=self._clock_offsets.get(account_id, 0.0))
        summary: dict[str, Any] = {"trigger": trigger}
        poll_due = poll if poll is not None else (connection.get("next_poll_at") is None
                                                  or connection["next_poll_at"] <= datetime.now(UTC))
        polled = postpone_poll = False
        try:
            if only is not None:
                object_type, record_ids = only
                setup = next((s for s in setups if s.name == object_type), None)
                if setup is not None:
                    await outbound.flush(cycle, setup, record_ids=record_ids)
            elif only_salesforce is not None:
                object_type, salesforce_ids = only_salesforce
                setup = next((s for s in setups if s.name == object_type), None)
                if setup is not None:
                    rows = await client.retrieve(setup.salesforce_object, salesforce_ids, setup.salesforce_fields())
                    await inbound.handle_rows(cycle, setup, list(rows.values()), force=True)
            else:
                for setup in setups:
                    await outbound.flush(cycle, setup, min_age_seconds=0.0 if trigger != "schedule"
                                         else self.settings.flush_interval_seconds)
                if poll_due and setups:
                    if client.clock_offset is not None:
                        cycle.clock_offset = client.clock_offset
                    await inbound.poll(cycle, setups)
                    polled = True
                if budget.retries_allowed:
                    await self._requeue_errors(account_id)
            await self._cycle_succeeded(account_id)
        except ApiLimitExceeded as exc:
            summary["stopped"] = "REQUEST_LIMIT_EXCEEDED"
            await self._suspend(account_id, ErrorCategory.API_LIMIT,
                                f"Salesforce refused the call: {exc.message} (REQUEST_LIMIT_EXCEEDED); the org's daily "
                                "allowance is spent, sync pauses and catches up later",
                                until=datetime.now(UTC) + timedelta(seconds=self.settings.limit_pause_seconds))
        except (SessionRejected, LoginFailed) as exc:
            summary["stopped"] = "CONNECTION"
            await self._connection_failed(account_id, f"Salesforce refused the stored credentials: {exc}")
        except (SalesforceUnavailable, SalesforceApiError) as exc:
            summary["stopped"] = "SALESFORCE_UNAVAILABLE"
            await self._record_connection_error(account_id, str(exc))
            # Not at once again: the next poll waits (queued changes keep their own backoff).
            postpone_poll = True
        finally:
            if client.clock_offset is not None:
                self._clock_offsets[account_id] = client.clock_offset
        summary.update({"inbound": {k: v.as_dict() for k, v in cycle.inbound.items()},
                        "outbound": {k: v.as_dict() for k, v in cycle.outbound.items()},
                        "apiCalls": client.calls, "polled": polled})
        next_poll = datetime.now(UTC) + timedelta(seconds=self.settings.poll_interval_seconds) \
            if polled or postpone_poll else None
        async with transaction(self.sessionmaker) as db:
            await connection_repo.record_cycle(db, account_id, summary, next_poll_at=next_poll)
            for object_type in {*cycle.inbound, *cycle.outbound}:
                await mapping_repo.record_poll(
                    db, account_id, object_type, watermark=None,
                    summary={"inbound": cycle.inbound.get(object_type, DirectionCounts()).as_dict(),
                             "outbound": cycle.outbound.get(object_type, DirectionCounts()).as_dict(),
                             "at": datetime.now(UTC).isoformat()},
                    added={f"{direction}.{name}": value
                           for direction, table in (("inbound", cycle.inbound), ("outbound", cycle.outbound))
                           for name, value in table.get(object_type, DirectionCounts()).counts.items()})
        return summary

    async def _client(self, connection: dict[str, Any], budget: Budget) -> Any:
        opened = self.connector.open(connection)
        return self.connector.client(account_id=connection["account_id"], credentials=opened.credentials,
                                     api_version=connection["api_version"], session=opened.session, budget=budget)

    async def _setups(self, db: AsyncSession, account_id: int) -> list[ObjectSetup]:
        setups = []
        for row in await mapping_repo.enabled_objects(db, account_id):
            object_type = SYNC_OBJECT_TYPES.get(row["object_type"])
            if object_type is None:
                continue
            mappings = active_mappings(await mapping_repo.mappings(db, account_id, row["object_type"],
                                                                   row["salesforce_object"]))
            setups.append(ObjectSetup(object_type, row["salesforce_object"], mappings, row["watermark"],
                                      row["started_from"]))
        return setups

    async def _requeue_errors(self, account_id: int) -> None:
        """Records that failed for good are tried again on their schedule (HubSpot retries errored records)."""
        async with transaction(self.sessionmaker) as db:
            due = await error_repo.due_retries(db, account_id)
            outbound_due: dict[str, list[int]] = {}
            for row in due:
                if row["direction"] == "OUTBOUND" and row["record_id"] is not None:
                    outbound_due.setdefault(row["object_type"], []).append(int(row["record_id"]))
            for object_type, ids in outbound_due.items():
                await queue_repo.enqueue(db, account_id, object_type, ids, "RETRY")
            await error_repo.postpone(db, [row["id"] for row in due], None)

    # -- suspensions -----------------------------------------------------------------------------------------

    async def _suspend(self, account_id: int, kind: ErrorCategory, reason: str, *, until: datetime | None) -> None:
        async with transaction(self.sessionmaker) as db:
            newly = await connection_repo.suspend(db, account_id, kind=kind.value, reason=reason, until=until)
            recorded = await error_repo.record(db, account_id, [ErrorWrite(
                direction="OUTBOUND", object_type="", category=kind.value,
                code="REQUEST_LIMIT_EXCEEDED" if kind is ErrorCategory.API_LIMIT else "CONNECTION",
                message=reason, transient=True)])
            events = [account_event(account_id, "sync.paused", {"reason": f"PAUSED_{kind.value}", "message": reason,
                                                         "until": until.isoformat() if until else None})] \
                if newly else []
            if newly:
                events += [error_event(account_id, row) for row in recorded]
            await add_events(db, events)
        if newly:
            log.warning("sync paused", account_id=account_id, reason=kind.value)

    async def _resume(self, account_id: int, kind: ErrorCategory) -> None:
        async with transaction(self.sessionmaker) as db:
            if await connection_repo.lift_suspension(db, account_id, kind.value):
                await error_repo.clear_connection_errors(db, account_id, [kind.value])
                await add_events(db, [account_event(account_id, "sync.resumed", {"reason": f"PAUSED_{kind.value}"})])
                log.info("sync resumed", account_id=account_id, after=kind.value)

    async def _connection_failed(self, account_id: int, message: str) -> None:
        async with transaction(self.sessionmaker) as db:
            await connection_repo.mark_connection_failed(db, account_id, message)
            recorded = await error_repo.record(db, account_id, [ErrorWrite(
                direction="OUTBOUND", object_type="", category="CONNECTION", code="INVALID_SESSION_ID",
                message=message)])
            await add_events(db, [account_event(account_id, "sync.paused", {"reason": "PAUSED_CONNECTION",
                                                                     "message": message}),
                                  *(error_event(account_id, r) for r in recorded)])
        log.warning("sync paused: connection refused", account_id=account_id)

    async def _record_connection_error(self, account_id: int, message: str) -> None:
        async with transaction(self.sessionmaker) as db:
            recorded = await error_repo.record(db, account_id, [ErrorWrite(
                direction="OUTBOUND", object_type="", category="CONNECTION", code="SERVER_UNAVAILABLE",
                message=message, transient=True)])
            await add_events(db, [error_event(account_id, r) for r in recorded
                                  if r["attempts"] == 1])
        log.warning("salesforce unavailable during a sync cycle", account_id=account_id, error=message)

    async def _cycle_succeeded(self, account_id: int) -> None:
        async with transaction(self.sessionmaker) as db:
            await error_repo.clear_connection_errors(db, account_id, [ErrorCategory.CONNECTION.value])


__all__ = ["SyncEngine"]

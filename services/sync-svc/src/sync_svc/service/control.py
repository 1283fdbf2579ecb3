"""Sync control use cases: start, pause, run one cycle now, status, budget, resync one record, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crm_common.errors import HubSpotError
from crm_common.outbox import add_events
from crm_common.timestamps import timestamp_or_none
from sqlalchemy.ext.asyncio import AsyncSession

from sync_svc.connector import Connector
from sync_svc.domain.errors import Direction, ErrorCategory
from sync_svc.domain.objects import SYNC_OBJECT_TYPES
from sync_svc.engine.context import account_event
from sync_svc.engine.cycle import SyncEngine
from sync_svc.repositories import connections as connection_repo
from sync_svc.repositories import errors as error_repo
from sync_svc.repositories import links as link_repo
from sync_svc.repositories import mappings as mapping_repo
from sync_svc.repositories import queue as queue_repo
from sync_svc.salesforce.errors import SalesforceError
from sync_svc.service.connection import client_for, unreachable
from sync_svc.service.objects import object_type_or_404

MAX_DAILY_API_CALLS = 100_000_000




async def _connected(session: AsyncSession, account_id: int) -> dict[str, Any]:
    row = await connection_repo.get(session, account_id, for_update=True)
    if row is None or row["status"] not in ("CONNECTED", "ERROR"):
        raise HubSpotError(409, "Salesforce is not connected for this account: PUT /corral/v1/salesforce/connection "
                                "first", sub_category="NOT_CONNECTED")
    return row


async def start(*, account_id: int, session: AsyncSession, connector: Connector) -> dict[str, Any]:
    """Continuous sync from now on: each enabled object pulls only what changes in Salesforce after this moment."""
    row = await _connected(session, account_id)
    enabled = await mapping_repo.enabled_objects(session, account_id)
    if not enabled:
        raise HubSpotError(409, "No object is enabled: PUT /corral/v1/salesforce/objects/{objectType} first",
                           sub_category="NOTHING_ENABLED")
    pending = [o for o in enabled if o["watermark"] is None]
    if pending:
        _, client = await client_for(account_id=account_id, session=session, connector=connector)
        try:
            await client.limits()  # its Date header is the org's "now"
        except SalesforceError as exc:
            raise unreachable(exc) from None
        now = client.server_time or datetime.now(UTC)
        for obj in pending:
            await mapping_repo.set_watermark(session, account_id, obj["object_type"], now, starting=True)
    resuming = row["sync_state"] == "PAUSED"
    await connection_repo.set_sync_state(session, account_id, "RUNNING", started=row["sync_state"] == "NOT_STARTED")
    if resuming:
        await add_events(session, [account_event(account_id, "sync.resumed", {"reason": "PAUSED_BY_USER"})])
    return await status(account_id=account_id, session=session)


async def pause(*, account_id: int, session: AsyncSession) -> dict[str, Any]:
    row = await _connected(session, account_id)
    if row["sync_state"] == "RUNNING":
        await connection_repo.set_sync_state(session, account_id, "PAUSED")
        await add_events(session, [account_event(account_id, "sync.paused", {"reason": "PAUSED_BY_USER"})])
    return await status(account_id=account_id, session=session)


def state_of(row: dict[str, Any] | None) -> str:
    if row is None or row["status"] in ("DISCONNECTED", "AUTHORIZATION_REQUIRED"):
        return "NOT_CONNECTED"
    if row["status"] == "ERROR" or row.get("suspended") == ErrorCategory.CONNECTION:
        return "PAUSED_CONNECTION"
    if row["sync_state"] == "NOT_STARTED":
        return "NOT_STARTED"
    if row["sync_state"] == "PAUSED":
        return "PAUSED"
    if row.get("suspended") == ErrorCategory.API_LIMIT:
        return "PAUSED_API_LIMIT"
    return "RUNNING"


async def status(*, account_id: int, session: AsyncSession) -> dict[str, Any]:
    row = await connection_repo.get(session, account_id)
    objects = {o["object_type"]: o for o in await mapping_repo.objects(session, account_id)}
    queued = await queue_repo.counts(session, account_id)
    linked = await link_repo.counts_by_object(session, account_id)
    used = await connection_repo.calls_last_day(session, account_id)
    cap = row.get("daily_api_calls") if row else None
    return {
        "state": state_of(row),
        "startedAt": timestamp_or_none(row.get("started_at")) if row else None,
        "suspendedReason": row.get("suspended_reason") if row else None,
        "lastCycleAt": timestamp_or_none(row.get("last_cycle_at")) if row else None,
        "lastCycle": row.get("last_cycle") if row else None,
        "objects": [{
            "objectType": name, "salesforceObject": objects[name]["salesforce_object"],
            "enabled": objects[name]["enabled"], "watermark": timestamp_or_none(objects[name]["watermark"]),
            "lastPolledAt": timestamp_or_none(objects[name]["last_polled_at"]), "lastCycle": objects[name]["last_cycle"],
            "counts": objects[name]["counts"], "queuedChanges": queued.get(name, 0), "linkedRecords": linked.get(name, 0),
        } for name in SYNC_OBJECT_TYPES if name in objects],
        "queuedChanges": sum(queued.values()),
        "apiCalls": {"last24h": used, "dailyBudget": cap,
                     "remaining": None if cap is None else max(cap - used, 0)},
        "errors": await error_repo.counts(session, account_id),
    }


async def set_budget(*, account_id: int, daily_api_calls: int | None, session: AsyncSession) -> dict[str, Any]:
    await _connected(session, account_id)
    if daily_api_calls is not None and not 1 <= daily_api_calls <= MAX_DAILY_API_CALLS:
        raise HubSpotError(400, f"dailyApiCalls must be between 1 and {MAX_DAILY_API_CALLS:,} (or null for no cap)",
                           errors=[{"message": "out of range", "code": "INVALID_BUDGET", "in": "dailyApiCalls"}])
    await connection_repo.set_budget(session, account_id, daily_api_calls)
    return await status(account_id=account_id, session=session)


async def run_now(*, account_id: int, session: AsyncSession, engine: SyncEngine) -> dict[str, Any]:
    row = await connection_repo.get(session, account_id)
    if row is None or row["status"] != "CONNECTED":
        raise HubSpotError(409, "Salesforce is not connected for this account", sub_category="NOT_CONNECTED")
    if row["sync_state"] == "NOT_STARTED":
        raise HubSpotError(409, "Sync has not started: POST /corral/v1/salesforce/sync/start first (until then the "
                                "settings are saved for later)", sub_category="NOT_STARTED")
    summary = await engine.run(account_id, trigger="api", poll=True)
    assert summary is not None
    return summary


async def resync_record(*, account_id: int, object_type_name: str, record_id: str, session: AsyncSession,
                        engine: SyncEngine) -> dict[str, Any]:
    object_type = object_type_or_404(object_type_name)
    if not record_id.isdigit() or len(record_id) > 18:
        raise HubSpotError(400, f"recordId must be a record id; got {record_id!r}")
    obj = await mapping_repo.get_object(session, account_id, object_type.name)
    if obj is None or not obj["enabled"]:
        raise HubSpotError(409, f"{object_type.name} do not sync with Salesforce", sub_category="OBJECT_NOT_ENABLED")
    row = await connection_repo.get(session, account_id)
    if row is None or row["status"] != "CONNECTED":
        raise HubSpotError(409, "Salesforce is not connected for this account", sub_category="NOT_CONNECTED")
    summary = await engine.run(account_id, trigger="resync", only=(object_type.name, [int(record_id)]))
    assert summary is not None
    return summary


# -- errors -----------------------------------------------------------------------------------------------------


def error_out(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "category": row["category"], "direction": row["direction"],
            "objectType": row["object_type"] or None,
            "recordId": str(row["record_id"]) if row["record_id"] is not None else None,
            "salesforceId": row["salesforce_id"], "code": row["code"], "message": row["message"],
            "fields": row["fields"], "transient": row["transient"], "attempts": row["attempts"],
            "firstSeenAt": timestamp_or_none(row["first_seen_at"]), "lastSeenAt": timestamp_or_none(row["last_seen_at"]),
            "nextRetryAt": timestamp_or_none(row["next_retry_at"])}


async def list_errors(*, account_id: int, category: str | None, object_type_name: str | None, direction: str | None,
                      after: str | None, limit: int, session: AsyncSession) -> dict[str, Any]:
    if category is not None and category not in ErrorCategory.__members__:
        raise HubSpotError(400, f"category must be one of {', '.join(ErrorCategory.__members__)}; got {category!r}")
    if direction is not None and direction not in Direction.__members__:
        raise HubSpotError(400, f"direction must be INBOUND or OUTBOUND; got {direction!r}")
    object_type = object_type_or_404(object_type_name).name if object_type_name else None
    if after is not None and (not after.isdigit() or len(after) > 18):
        raise HubSpotError(400, f"after must be the paging cursor of the previous page; got {after!r}")
    rows = await error_repo.page(session, account_id, category=category, object_type=object_type,
                                 direction=direction, after=int(after or 0), limit=limit + 1)
    body: dict[str, Any] = {"results": [error_out(r) for r in rows[:limit]]}
    if len(rows) > limit:
        body["paging"] = {"next": {"after": str(rows[limit - 1]["id"])}}
    return body


async def retry_error(*, account_id: int, error_id: str, session: AsyncSession, engine: SyncEngine) -> dict[str, Any]:
    row = await error_repo.get(session, account_id, int(error_id)) if error_id.isdigit() and len(error_id) < 19 else None
    if row is None:
        raise HubSpotError(404, f"No sync error with id {error_id}", category="OBJECT_NOT_FOUND")
    if not row["object_type"] or row["record_key"] == "":
        summary = await engine.run(account_id, trigger="api", poll=True)
    elif row["direction"] == Direction.OUTBOUND or row["record_id"] is not None:
        summary = await engine.run(account_id, trigger="retry", only=(row["object_type"], [int(row["record_id"])]))
    else:
        summary = await engine.run(account_id, trigger="retry", only_salesforce=(row["object_type"],
                                                                                  [row["salesforce_id"]]))
    async with engine.sessionmaker() as db:
        remaining = await error_repo.get(db, account_id, int(error_id))
    return {"resolved": remaining is None, "error": error_out(remaining) if remaining else None, "cycle": summary}

"""The outbound consumer: Corral's `record.*` and `record.merged` events become rows of the outbound queue.

A change whose source is SALESFORCE is the sync's own write coming back: it goes nowhere. Changes to
properties no mapping reads go nowhere either. Many events of one record coalesce into one queue row,
and a CloudEvents batch (a bulk write's thousand events) is handled in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
from crm_common.cloudevents import CloudEvent
from crm_common.consumer import Subscription
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from sync_svc.domain.objects import LINK_PROPERTIES, SYNC_OBJECT_TYPES
from sync_svc.records import SOURCE_TYPE
from sync_svc.repositories import links as link_repo
from sync_svc.repositories import queue as queue_repo

log = structlog.get_logger(__name__)
QUEUE = "sync-svc.record-changes"
ROUTING_KEYS = ("record.created", "record.updated", "record.restored", "record.merged")
BY_TYPE_ID = {t.object_type_id: t for t in SYNC_OBJECT_TYPES.values()}


async def _syncing(session: AsyncSession, account_id: int) -> dict[str, set[str]]:
    """Object type -> mapped properties, for the objects whose sync has started (running or paused)."""
    rows = await session.execute(text("""
        SELECT o.object_type, m.property FROM sync_objects o
        JOIN connections c ON c.account_id = o.account_id AND c.sync_state <> 'NOT_STARTED'
                          AND c.status IN ('CONNECTED', 'ERROR')
        LEFT JOIN field_mappings m ON m.account_id = o.account_id AND m.object_type = o.object_type
                                  AND m.salesforce_object = o.salesforce_object AND m.sync_rule <> 'DONT_SYNC'
        WHERE o.account_id = :a AND o.enabled"""), {"a": account_id})
    out: dict[str, set[str]] = {}
    for object_type, prop in rows:
        out.setdefault(object_type, set())
        if prop:
            out[object_type].add(prop)
    return out


async def handle_changes(session: AsyncSession, events: list[CloudEvent]) -> None:
    by_account: dict[int, list[CloudEvent]] = defaultdict(list)
    for event in events:
        data = event.data if isinstance(event.data, dict) else {}
        if data.get("objectTypeId") in BY_TYPE_ID and event.corralaccount is not None:
            by_account[int(event.corralaccount)].append(event)
    for account_id, account_events in by_account.items():
        syncing = await _syncing(session, account_id)
        if not syncing:
            continue
        queued: dict[str, list[int]] = defaultdict(list)
        for event in account_events:
            data: dict[str, Any] = event.data  # type: ignore[assignment]
            object_type = BY_TYPE_ID[data["objectTypeId"]].name
            mapped = syncing.get(object_type)
            if mapped is None:
                continue
            if event.type == "record.merged":
                await _merged(session, account_id, object_type, data)
                continue
            if data.get("sourceType") == SOURCE_TYPE:
                continue  # our own write, echoed back
            if event.type == "record.updated":
                changed = set((data.get("changes") or {}).keys()) - LINK_PROPERTIES
                if not changed & mapped:
                    continue
            queued[object_type].append(int(data["id"]))
        for object_type, ids in queued.items():
            await queue_repo.enqueue(session, account_id, object_type, ids, "CHANGED")


async def _merged(session: AsyncSession, account_id: int, object_type: str, data: dict[str, Any]) -> None:
    """Only the primary's link keeps syncing, now from the merged record; the secondary's stops (its
    Salesforce record stays as it is, as at HubSpot)."""
    new_id, primary, secondary = int(data["id"]), int(data["primaryId"]), int(data["secondaryId"])
    await link_repo.delete(session, account_id, object_type, [secondary])
    if new_id != primary:
        moved = await link_repo.move(session, account_id, object_type, primary, new_id)
        log.info("merged record takes the primary's salesforce link", account_id=account_id, record_id=new_id,
                 primary_id=primary, linked=moved)
    await queue_repo.move(session, account_id, object_type, [primary, secondary], new_id)


SUBSCRIPTIONS = (Subscription(queue=QUEUE, routing_keys=ROUTING_KEYS, batch_handler=handle_changes),)

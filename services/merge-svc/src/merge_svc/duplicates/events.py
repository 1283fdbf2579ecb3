"""Keeping suggestions current without a rescan: a durable consumer of record changes.

Created and updated records are re-filed under their block keys and scored against the records sharing
them with the account's stored model; they join, leave or form clusters. Archived, deleted and merged
records leave them (a merge's result is filed as a new record). Types never scanned have no model and are
skipped at the cost of one indexed read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_common.cloudevents import CloudEvent
from crm_common.consumer import Subscription
from crm_common.contracts.records import RecordsClient
from crm_common.inputs import as_id
from sqlalchemy.ext.asyncio import AsyncSession

from merge_svc.domain.matching import MatchingSettings
from merge_svc.duplicates import repository, service

QUEUE = "merge-svc.duplicates"
ROUTING_KEYS = ("record.created", "record.updated", "record.archived", "record.restored", "record.deleted",
                "record.merged", "record.unmerged")


def _ids(*values: Any) -> list[int]:
    return [found for v in values if v is not None and (found := as_id(str(v))) is not None]


async def _current(records: RecordsClient, account_id: int, type_id: str, settings: MatchingSettings,
                   ids: list[int]) -> dict[int, dict[str, Any] | None]:
    """The compared values of these records now; None for those no longer live."""
    page = await records.export_page(account_id, type_id, settings.names(),
                                     ids=ids, limit=max(len(ids), 1))
    found = {int(row[0]): dict(zip(page.properties, row[1:], strict=True)) for row in page.results}
    return {i: found.get(i) for i in ids}


# A change whose event is older than this before the scan began was read by the scan (an import's million
# record.created events, still queued when the scan starts, need no second pass). The margin covers a
# transaction that stamped its event before the scan began but committed after the scan read that record.
SCAN_MARGIN = timedelta(minutes=1)


def _covered_by_scan(event: CloudEvent, scanned_from: datetime | None) -> bool:
    if scanned_from is None:
        return False
    try:
        happened = datetime.fromisoformat(event.time.replace("Z", "+00:00"))
    except ValueError:
        return False
    if happened.tzinfo is None:
        happened = happened.replace(tzinfo=UTC)
    return happened < scanned_from - SCAN_MARGIN


@dataclass
class _Changes:
    """What a message's events say about the records of one account and type, in event order: known values
    (created with its properties, None once gone) or to be read again from records-svc (the truth now)."""

    known: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    to_read: set[int] = field(default_factory=set)

    def set(self, ids: list[int], values: dict[str, Any] | None) -> None:
        for record_id in ids:
            self.known[record_id] = values
            self.to_read.discard(record_id)

    def read(self, ids: list[int]) -> None:
        for record_id in ids:
            self.known.pop(record_id, None)
            self.to_read.add(record_id)


def _note(changes: _Changes, event: CloudEvent, compared: set[str]) -> None:
    data = event.data or {}
    match event.type:
        case "record.created":
            changes.set(_ids(data.get("id")), dict(data.get("properties") or {}))
        case "record.updated":
            if not compared.isdisjoint((data.get("changes") or {}).keys()):
                changes.read(_ids(data.get("id")))
        case "record.archived" | "record.deleted":
            changes.set(_ids(data.get("id")), None)
        case "record.restored":
            changes.read(_ids(data.get("id")))
        case "record.merged":
            changes.set(_ids(*(data.get("mergedIds") or []), data.get("primaryId"), data.get("secondaryId")), None)
            changes.read(_ids(data.get("id")))
        case "record.unmerged":
            changes.set(_ids(data.get("mergedId")), None)
            changes.read(_ids(data.get("primaryId"), data.get("secondaryId"), *(data.get("restoredIds") or [])))


def handler(records: Callable[[], RecordsClient]) -> Callable[[AsyncSession, list[CloudEvent]], Any]:
    """One message's events (a bulk write's thousand) in one pass: per account and type, the model is read
    once, the records to read again are read in one call and re-filed together."""

    async def on_record_events(session: AsyncSession, events: list[CloudEvent]) -> None:
        by_type: dict[tuple[int, str], list[CloudEvent]] = {}
        for event in events:
            type_id = str((event.data or {}).get("objectTypeId") or "")
            by_type.setdefault((event.corralaccount, type_id), []).append(event)
        for (account_id, type_id), group in by_type.items():
            model = await repository.get_model(session, account_id, type_id)
            if model is None:
                continue
            settings = MatchingSettings.from_json(model["settings"])
            compared = set(settings.names())
            changes = _Changes()
            for event in group:
                if not _covered_by_scan(event, model.get("scanned_from")):
                    _note(changes, event, compared)
            current = dict(changes.known)
            if changes.to_read:
                current.update(await _current(records(), account_id, type_id, settings, sorted(changes.to_read)))
            await service.refresh_records(account_id=account_id, type_id=type_id, current=current,
                                          session=session)

    return on_record_events


def subscriptions(records: Callable[[], RecordsClient]) -> list[Subscription]:
    return [Subscription(queue=QUEUE, routing_keys=ROUTING_KEYS, batch_handler=handler(records))]

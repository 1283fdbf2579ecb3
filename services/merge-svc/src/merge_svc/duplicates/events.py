"""Keeping suggestions current without a rescan: a durable consumer of record changes.

Created and updated records are re-filed under their block keys and scored against the records sharing
them with the account's stored model; they join, leave or form clusters. Archived, deleted and merged
records leave them (a merge's result is filed as a new record). Types never scanned have no model and are
skipped at the cost of one indexed read.
"""

from __future__ import annotations

from collections.abc import Callable
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


def handler(records: Callable[[], RecordsClient]) -> Callable[[AsyncSession, CloudEvent], Any]:
    async def on_record_event(session: AsyncSession, event: CloudEvent) -> None:
        data = event.data or {}
        type_id = str(data.get("objectTypeId") or "")
        account_id = event.corralaccount
        model = await repository.get_model(session, account_id, type_id)
        if model is None or _covered_by_scan(event, model.get("scanned_from")):
            return
        settings = MatchingSettings.from_json(model["settings"])
        compared = set(settings.names())
        current: dict[int, dict[str, Any] | None]
        match event.type:
            case "record.created":
                current = {int(data["id"]): dict(data.get("properties") or {})}
            case "record.updated":
                if compared.isdisjoint((data.get("changes") or {}).keys()):
                    return
                current = await _current(records(), account_id, type_id, settings, _ids(data.get("id")))
            case "record.archived" | "record.deleted":
                current = dict.fromkeys(_ids(data.get("id")))
            case "record.restored":
                current = await _current(records(), account_id, type_id, settings, _ids(data.get("id")))
            case "record.merged":
                current = dict.fromkeys(_ids(*(data.get("mergedIds") or []), data.get("primaryId"),
                                             data.get("secondaryId")))
                current.update(await _current(records(), account_id, type_id, settings, _ids(data.get("id"))))
            case "record.unmerged":
                current = dict.fromkeys(_ids(data.get("mergedId")))
                current.update(await _current(records(), account_id, type_id, settings,
                                              _ids(data.get("primaryId"), data.get("secondaryId"),
                                                   *(data.get("restoredIds") or []))))
            case _:
                return
        await service.refresh_records(account_id=account_id, type_id=type_id, current=current, session=session)

    return on_record_event


def subscriptions(records: Callable[[], RecordsClient]) -> list[Subscription]:
    return [Subscription(queue=QUEUE, routing_keys=ROUTING_KEYS, handler=handler(records))]

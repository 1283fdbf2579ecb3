"""Undo one operation from its journal: what import revert and unmerge stand on.

Entries are undone newest first. A value the operation wrote that has changed since is left as it
is and reported as a conflict, so undo never clobbers later work; a record it created is deleted
only if nothing changed it since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_common.cloudevents import event_dict, now_iso
from crm_common.outbox import add_events
from crm_common.timestamps import now_timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.service import SOURCE


@dataclass
class UndoReport:
    deleted_records: list[int] = field(default_factory=list)
    restored_values: int = 0
    restored_records: list[int] = field(default_factory=list)
    archived_records: list[int] = field(default_factory=list)
    removed_associations: int = 0
    restored_associations: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "deletedRecords": [str(i) for i in self.deleted_records],
            "restoredValues": self.restored_values,
            "restoredRecords": [str(i) for i in self.restored_records],
            "archivedRecords": [str(i) for i in self.archived_records],
            "removedAssociations": self.removed_associations,
            "restoredAssociations": self.restored_associations,
            "conflicts": self.conflicts,
        }


async def undo_operation(session: AsyncSession, *, account_id: int, operation_id: str,
                         source_type: str) -> UndoReport:
    """Decide per entry in memory (newest first), then write set-based: reverting a million-row import is a
    handful of statements, not one per record."""
    entries = await repository.journal_for_undo(session, account_id, operation_id)
    report = UndoReport()
    record_ids = sorted({e["record_id"] for e in entries if e["association"] is None})
    current = await repository.current_properties(session, account_id, record_ids)
    # What the operation last wrote per record and property (the newest entry wins).
    restores: dict[int, dict[str, str]] = {}
    deletions: list[int] = []
    archived_wanted: dict[int, bool] = {}
    # Per association row, what undoing leaves: the oldest entry's undo is processed last and wins.
    links: dict[tuple[int, int, str, int], tuple[bool, tuple[str, int, str, int, str, int]]] = {}
    for entry in entries:
        record_id = entry["record_id"]
        kind = entry["kind"]
        if kind in ("ASSOCIATE", "DISSOCIATE"):
            a = entry["association"]
            full = (a["fromObjectTypeId"], a["fromId"], a["toObjectTypeId"], a["toId"], a["category"], a["typeId"])
            links[(a["fromId"], a["toId"], a["category"], a["typeId"])] = (kind == "DISSOCIATE", full)
            continue
        state = current.get(record_id)
        if state is None:
            continue  # deleted since (GDPR, or by this undo): nothing to restore
        stored = state["properties"]
        if kind == "CREATE":
            changed = {p: stored.get(p, "") for p, v in (entry["new_values"] or {}).items() if stored.get(p, "") != v}
            if changed:
                report.conflicts.append({"recordId": str(record_id), "reason": "changed after the operation created it",
                                         "properties": changed})
                continue
            deletions.append(record_id)
            current.pop(record_id)
        elif kind == "UPDATE":
            for prop, new_value in (entry["new_values"] or {}).items():
                actual = stored.get(prop, "")
                if actual != new_value:
                    report.conflicts.append({"recordId": str(record_id), "property": prop, "expected": new_value,
                                             "actual": actual})
                    continue
                old = (entry["old_values"] or {}).get(prop, "")
                restores.setdefault(record_id, {})[prop] = old
                stored = {**stored, prop: old}
            state["properties"] = stored
        elif kind in ("ARCHIVE", "RESTORE") and state["archived"] == (kind == "ARCHIVE"):
            state["archived"] = kind == "RESTORE"
            archived_wanted[record_id] = state["archived"]

    deleted = await repository.hard_delete_records(session, account_id, deletions)
    report.deleted_records.extend(deleted)
    removed = [key for key, (insert, _) in links.items() if not insert]
    report.removed_associations = len(await repository.delete_associations(session, account_id, removed))
    report.restored_associations = len(await repository.insert_associations(
        session, account_id, [full for insert, full in links.values() if insert]))
    for archived in (True, False):
        by_type: dict[str, list[int]] = {}
        for record_id, wanted in archived_wanted.items():
            if wanted == archived and record_id in current:
                by_type.setdefault(current[record_id]["object_type_id"], []).append(record_id)
        for object_type_id, ids in by_type.items():
            changed_ids = await repository.set_archived(session, account_id, object_type_id, ids, archived)
            (report.archived_records if archived else report.restored_records).extend(changed_ids)
    updates = [(rid, props) for rid, props in restores.items() if rid in current]
    await repository.set_properties(session, updates, changed_at=now_timestamp(), source_type=source_type,
                                    source_id=operation_id)
    report.restored_values = sum(len(p) for _, p in updates)

    time = now_iso()
    object_types = {e["record_id"]: e["object_type_id"] for e in entries}
    events = [_event("record.deleted", account_id, object_types[i], i, time) for i in deleted]
    events += [_event("record.updated", account_id, current[i]["object_type_id"], i, time,
                      {"changes": props, "sourceType": source_type}) for i, props in updates]
    events += [_event("record.archived", account_id, object_types[i], i, time) for i in report.archived_records]
    events += [_event("record.restored", account_id, object_types[i], i, time) for i in report.restored_records]
    await repository.mark_undone(session, account_id, operation_id)
    await add_events(session, events)
    return report


def _event(event_type: str, account_id: int, object_type_id: str, record_id: int, time: str,
           data: dict[str, Any] | None = None) -> dict[str, Any]:
    return event_dict(source=SOURCE, type=event_type, account_id=account_id, subject=f"{object_type_id}/{record_id}",
                      time=time, data={"objectTypeId": object_type_id, "id": str(record_id), **(data or {})})

"""Undo one operation from its journal: what import revert and unmerge stand on.

Entries are undone newest first. A value the operation wrote that has changed since is left as it
is and reported as a conflict, so undo never clobbers later work; a record it created is deleted
only if nothing changed it since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_common.cloudevents import CloudEvent
from crm_common.outbox import add_events
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.service import SOURCE, now_text


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
    entries = await repository.journal_for_undo(session, account_id, operation_id)
    report = UndoReport()
    record_ids = sorted({e["record_id"] for e in entries if e["association"] is None})
    current = await repository.current_properties(session, account_id, record_ids)
    # What the operation last wrote per record and property (the newest entry wins).
    restores: dict[int, dict[str, str]] = {}
    events: list[CloudEvent] = []
    for entry in entries:
        record_id = entry["record_id"]
        kind = entry["kind"]
        state = current.get(record_id)
        if kind in ("ASSOCIATE", "DISSOCIATE"):
            a = entry["association"]
            row = (a["fromId"], a["toId"], a["category"], a["typeId"])
            if kind == "ASSOCIATE":
                report.removed_associations += len(await repository.delete_associations(session, account_id, [row]))
            else:
                report.restored_associations += len(await repository.insert_associations(
                    session, account_id, [(a["fromObjectTypeId"], a["fromId"], a["toObjectTypeId"], a["toId"],
                                           a["category"], a["typeId"])]))
            continue
        if state is None:
            continue  # deleted since (GDPR): nothing to restore
        stored = state["properties"]
        if kind == "CREATE":
            changed = {p: stored.get(p, "") for p, v in (entry["new_values"] or {}).items() if stored.get(p, "") != v}
            if changed:
                report.conflicts.append({"recordId": str(record_id), "reason": "changed after the operation created it",
                                         "properties": changed})
                continue
            report.deleted_records.extend(await repository.hard_delete_records(session, account_id, [record_id]))
            events.append(_event("record.deleted", account_id, state["object_type_id"], record_id))
            current.pop(record_id, None)
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
        elif kind == "ARCHIVE" and state["archived"]:
            await repository.set_archived(session, account_id, state["object_type_id"], [record_id], False)
            report.restored_records.append(record_id)
        elif kind == "RESTORE" and not state["archived"]:
            await repository.set_archived(session, account_id, state["object_type_id"], [record_id], True)
            report.archived_records.append(record_id)
    updates = [(rid, props) for rid, props in restores.items() if rid in current]
    await repository.set_properties(session, updates, changed_at=now_text(), source_type=source_type,
                                    source_id=operation_id)
    report.restored_values = sum(len(p) for _, p in updates)
    for record_id, props in updates:
        events.append(_event("record.updated", account_id, current[record_id]["object_type_id"], record_id,
                             {"changes": props, "sourceType": source_type}))
    await repository.mark_undone(session, account_id, operation_id)
    await add_events(session, events)
    return report


def _event(event_type: str, account_id: int, object_type_id: str, record_id: int,
           data: dict[str, Any] | None = None) -> CloudEvent:
    return CloudEvent(source=SOURCE, type=event_type, subject=f"{object_type_id}/{record_id}", corralaccount=account_id,
                      data={"objectTypeId": object_type_id, "id": str(record_id), **(data or {})})

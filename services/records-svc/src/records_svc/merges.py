"""Applying a merge plan (and undoing it) atomically. merge-svc decides the merged values; this module
owns what only records-svc can do in one transaction: the new record, its history, unique values,
associations, aliases and the hidden originals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_common.errors import HubSpotError
from crm_common.inputs import as_id
from crm_common.timestamps import now_timestamp, timestamp_or_none
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.catalog import load_catalog
from records_svc.domain.associations import PRIMARY_TYPES
from records_svc.domain.object_types import ObjectType
from records_svc.domain.properties import InvalidValue, normalize_value
from records_svc.service import (
    SYSTEM_MANAGED,
    WriteSource,
    conflict_error,
    journal,
    journal_entry,
    unique_claims,
)

HISTORY_VERSIONS_KEPT = 45


def _merged_ids(*records: dict[str, Any]) -> list[int]:
    ids: set[int] = set()
    for record in records:
        ids.add(record["id"])
        for part in (record["properties"].get("hs_merged_object_ids") or "").split(";"):
            if (merged_id := as_id(part)) is not None:
                ids.add(merged_id)
    return sorted(ids)


def _combined_history(*records: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    combined: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        for prop, versions in (record.get("history") or {}).items():
            combined.setdefault(prop, []).extend(versions)
    return {p: sorted(v, key=lambda e: e.get("timestamp", ""), reverse=True)[:HISTORY_VERSIONS_KEPT]
            for p, v in combined.items()}


def _public(row: dict[str, Any], object_type: ObjectType) -> dict[str, Any]:
    properties = dict(row["properties"])
    properties.update({"hs_object_id": str(row["id"]), "createdate": timestamp_or_none(row["created_at"]),
                       object_type.last_modified_property: timestamp_or_none(row["updated_at"])})
    return {"id": str(row["id"]), "properties": properties, "createdAt": timestamp_or_none(row["created_at"]),
            "updatedAt": timestamp_or_none(row["updated_at"]), "archived": bool(row["archived"])}


async def snapshot(session: AsyncSession, *, account_id: int, object_type: ObjectType, record_id: int) -> dict:
    rows = await repository.fetch_records(session, account_id, object_type.id, [record_id], archived=None,
                                          with_history=True)
    if record_id not in rows:
        raise HubSpotError(404, f"No {object_type.singular} with id {record_id} was found", category="OBJECT_NOT_FOUND")
    row = rows[record_id]
    merged = await repository.lock_for_merge(session, account_id, [record_id])
    links = await repository.record_associations(session, account_id, record_id)
    return {"id": str(record_id), "objectTypeId": object_type.id, "properties": row["properties"],
            "history": row["history"], "createdAt": timestamp_or_none(row["created_at"]), "updatedAt": timestamp_or_none(row["updated_at"]),
            "archived": row["archived"], "mergedInto": str(merged[record_id]["merged_into"])
            if merged[record_id]["merged_into"] else None,
            "associations": links["outgoing"], "incomingAssociations": links["incoming"]}


async def apply_merge(session: AsyncSession, *, account_id: int, object_type: ObjectType, merge_id: str,
                      primary_id: int, secondary_ids: list[int], properties: dict[str, Any]) -> dict[str, Any]:
    """Merge the secondaries (one for HubSpot's merge, several for a cluster) into a new record."""
    originals = [primary_id, *secondary_ids]
    if len(set(originals)) != len(originals):
        raise HubSpotError(400, "A record cannot be merged with itself")
    locked = await repository.lock_for_merge(session, account_id, sorted(originals))
    for record_id in originals:
        row = locked.get(record_id)
        if row is None or row["object_type_id"] != object_type.id:
            raise HubSpotError(404, f"No {object_type.singular} with id {record_id} was found",
                               category="OBJECT_NOT_FOUND")
        if row["merged_into"]:
            raise HubSpotError(409, f"{object_type.singular} {record_id} was already merged into {row['merged_into']}",
                               category="CONFLICT")
        if row["archived"]:
            raise HubSpotError(409, f"{object_type.singular} {record_id} is archived; restore it before merging",
                               category="CONFLICT")
    rows = [locked[i] for i in originals]
    catalog = await load_catalog(session, account_id, object_type)
    values: dict[str, str] = {}
    for name, raw in properties.items():
        if name in ("hs_object_id", "createdate", object_type.last_modified_property, "hs_merged_object_ids"):
            continue
        prop = catalog.properties.get(name)
        if prop is None:
            raise HubSpotError(400, f'Property "{name}" does not exist on {object_type.name}')
        try:
            text_value = normalize_value(prop, raw)
        except InvalidValue as exc:
            raise HubSpotError(400, f"{name}: {exc.message}") from None
        if text_value:
            values[name] = text_value.lstrip(";") if prop.multi_valued else text_value
    merged_ids = _merged_ids(*rows)
    values["hs_merged_object_ids"] = ";".join(str(i) for i in merged_ids)
    created_at: datetime = min(r["created_at"] for r in rows)
    source = WriteSource(source_type="MERGE", source_id=merge_id, operation_id=f"merge:{merge_id}", trusted=True)
    new_row = await repository.insert_record_with_history(
        session, account_id, object_type.id, values, _combined_history(*reversed(rows)), created_at,
        changed_at=now_timestamp(), source_type="MERGE", source_id=merge_id)
    new_id = new_row["id"]
    await repository.release_all_unique_values(session, originals)
    conflicts = await repository.claim_unique_values(session, account_id, object_type.id,
                                                     unique_claims(catalog, new_id, values))
    if conflicts:
        raise conflict_error(catalog, conflicts)
    drop_out: list[tuple[int, int]] = []
    drop_in: list[tuple[int, int]] = []
    for secondary_id in secondary_ids:
        out, inc = _secondary_primary_labels(object_type.id, secondary_id)
        drop_out += out
        drop_in += inc
    moved = await repository.move_associations(session, account_id, originals, new_id,
                                               drop_outgoing=drop_out, drop_incoming=drop_in)
    await repository.mark_merged(session, account_id, originals, new_id)
    await repository.point_aliases(session, account_id, object_type.id, originals, new_id)
    await journal(session, source, [
        journal_entry(source, account_id, object_type.id, new_id, "CREATE", new_values=values),
        *(journal_entry(source, account_id, object_type.id, record_id, "MERGED_INTO", new_values={"id": str(new_id)})
          for record_id in originals),
    ])
    return {"id": str(new_id), "record": _public(new_row, object_type),
            "mergedIds": [str(i) for i in merged_ids], "movedAssociations": moved}


def _secondary_primary_labels(object_type_id: str, secondary_id: int) -> tuple[list[tuple[int, int]],
                                                                              list[tuple[int, int]]]:
    """The secondary's primary-company label (and its inverse) stays behind: only the primary's keeps it."""
    outgoing, incoming = [], []
    for (from_type, _to_type), kind in PRIMARY_TYPES.items():
        if from_type == object_type_id:
            outgoing.append((secondary_id, kind.type_id))
            incoming.append((secondary_id, kind.inverse_type_id))
    return outgoing, incoming


async def unapply_merge(session: AsyncSession, *, account_id: int, object_type: ObjectType, merge_id: str,
                        merged_id: int, primary_snapshot: dict[str, Any],
                        secondary_snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    primary_id = int(primary_snapshot["id"])
    secondary_ids = [int(snap["id"]) for snap in secondary_snapshots]
    secondary_id = secondary_ids[0]
    locked = await repository.lock_for_merge(session, account_id, sorted({merged_id, primary_id, *secondary_ids}))
    merged = locked.get(merged_id)
    if merged is None or merged["object_type_id"] != object_type.id:
        raise HubSpotError(404, f"No {object_type.singular} with id {merged_id} was found", category="OBJECT_NOT_FOUND")
    if merged["merged_into"]:
        raise HubSpotError(409, f"{merged_id} was merged again into {merged['merged_into']}; unmerge that merge first",
                           category="CONFLICT")
    for original in (primary_id, *secondary_ids):
        if original not in locked or locked[original]["merged_into"] != merged_id:
            raise HubSpotError(409, f"{original} is not one of the records merged into {merged_id}", category="CONFLICT")
    catalog = await load_catalog(session, account_id, object_type)
    # Values on the merged record that differ from what the merge wrote are later edits.
    merge_entries = await repository.journal_page(session, account_id, f"merge:{merge_id}", after=0, limit=100)
    written = next((e["new_values"] for e in merge_entries if e["record_id"] == merged_id and e["kind"] == "CREATE"),
                   None)
    if written is None:
        raise HubSpotError(409, f"The journal of merge {merge_id} is gone (GDPR delete?); it cannot be undone",
                           category="CONFLICT")
    current = merged["properties"]
    later = {p: current.get(p, "") for p in set(current) | set(written)
             if p not in SYSTEM_MANAGED and current.get(p, "") != written.get(p, "")}
    primary_values = dict(primary_snapshot["properties"])
    secondaries_values = {int(snap["id"]): dict(snap["properties"]) for snap in secondary_snapshots}
    kept: dict[str, dict[str, str]] = {}
    conflicts: list[dict[str, Any]] = []
    for prop, value in sorted(later.items()):
        merged_value = written.get(prop, "")
        # A later edit of a value that came from one secondary goes back to that secondary.
        source_secondary = next((rid for rid, vals in secondaries_values.items()
                                 if merged_value == vals.get(prop, "")
                                 and merged_value != primary_values.get(prop, "")), None)
        target = secondaries_values[source_secondary] if source_secondary is not None else primary_values
        owner = source_secondary if source_secondary is not None else primary_id
        if merged_value not in (primary_values.get(prop, ""), *(v.get(prop, "") for v in secondaries_values.values())):
            conflicts.append({"property": prop, "mergedValue": written.get(prop, ""), "laterValue": value,
                              "appliedTo": str(owner),
                              "reason": "the merged value combined both records; the later edit went to one"})
        if value:
            target[prop] = value
        else:
            target.pop(prop, None)
        kept.setdefault(str(owner), {})[prop] = value
    # The merged record gives up its identities before the originals claim theirs back.
    await repository.release_all_unique_values(session, [merged_id])
    changed_at = now_timestamp()
    for record_id, values in ((primary_id, primary_values), *secondaries_values.items()):
        await repository.restore_merged_original(session, account_id, record_id, values, changed_at=changed_at,
                                                 source_id=merge_id)
        taken = await repository.claim_unique_values(session, account_id, object_type.id,
                                                     unique_claims(catalog, record_id, values))
        for namespace, value, owner in taken:
            conflicts.append({"recordId": str(record_id), "property": namespace, "value": value,
                              "reason": f"now belongs to record {owner}"})
    removed = await repository.delete_all_associations(session, account_id, merged_id)
    originals_rows = []
    known_others: set[int] = set()
    for snap in (primary_snapshot, *secondary_snapshots):
        record_id = int(snap["id"])
        for a in snap.get("associations", []):
            originals_rows.append((object_type.id, record_id, a["toObjectTypeId"], int(a["toId"]), a["category"],
                                   a["typeId"]))
            known_others.add(int(a["toId"]))
        for a in snap.get("incomingAssociations", []):
            originals_rows.append((a["fromObjectTypeId"], int(a["fromId"]), object_type.id, record_id, a["category"],
                                   a["typeId"]))
            known_others.add(int(a["fromId"]))
    # Associations made on the merged record after the merge follow the primary.
    for row in removed:
        if row["from_id"] == merged_id and row["to_id"] not in known_others:
            originals_rows.append((row["from_object_type_id"], primary_id, row["to_object_type_id"], row["to_id"],
                                   row["category"], row["type_id"]))
        elif row["to_id"] == merged_id and row["from_id"] not in known_others:
            originals_rows.append((row["from_object_type_id"], row["from_id"], row["to_object_type_id"], primary_id,
                                   row["category"], row["type_id"]))
    others = {r[1] for r in originals_rows} | {r[3] for r in originals_rows}
    alive = await repository.lock_for_merge(session, account_id, sorted(others))
    restorable = [r for r in originals_rows if r[1] in alive and r[3] in alive]
    restored = await repository.insert_associations(session, account_id, restorable)
    await repository.remove_aliases(session, account_id, [primary_id, *secondary_ids])
    await repository.mark_merged(session, account_id, [merged_id], primary_id)
    await repository.point_aliases(session, account_id, object_type.id, [merged_id], primary_id)
    source = WriteSource(source_type="MERGE", source_id=merge_id, operation_id=f"unmerge:{merge_id}", trusted=True)
    await journal(session, source, [journal_entry(source, account_id, object_type.id, merged_id, "UNMERGED",
                                                  new_values={"primaryId": str(primary_id),
                                                              "secondaryId": str(secondary_id),
                                                              "secondaryIds": [str(i) for i in secondary_ids]})])
    return {"primaryId": str(primary_id), "secondaryId": str(secondary_id),
            "secondaryIds": [str(i) for i in secondary_ids], "keptChanges": kept,
            "restoredAssociations": len(restored), "conflicts": conflicts}

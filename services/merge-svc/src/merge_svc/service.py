"""Merge use-cases: validate, lock, plan, have records-svc apply, keep history, queue events.

Merges touching the same record are serialised by advisory locks held, in a transaction of merge-svc's
database, across the records-svc call. The merge row and both snapshots are committed *before* records-svc
is asked to apply, so an applied merge can always be undone even if merge-svc dies before recording the
answer (the row then stays PENDING; records-svc journals the merge under `merge:<id>`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from crm_common.cloudevents import CloudEvent
from crm_common.contracts.base import ServiceCallError
from crm_common.contracts.records import MergeApplyRequest, MergeUnapplyRequest, RecordsClient
from crm_common.contracts.sync import SyncClient
from crm_common.db import transaction
from crm_common.errors import HubSpotError
from crm_common.inputs import parse_id
from crm_common.object_types import STANDARD_BY_ID
from crm_common.outbox import add_event
from crm_common.timestamps import timestamp_or_none
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from merge_svc import repository
from merge_svc.domain.limits import LIMIT_MESSAGE, merges_involved, over_limit
from merge_svc.domain.plan import MergePlan, PlanError, RecordView, Side, plan_cluster_merge, plan_merge
from merge_svc.domain.rules import Strategy

log = structlog.get_logger(__name__)
SOURCE = "merge-svc"
SYNC_GUARDED_TYPES = {"0-2": "companies"}
SYNC_UNREACHABLE = ("Companies cannot be merged right now: the Salesforce sync status could not be checked "
                    "(sync service unreachable); retry shortly")


def _plural(type_id: str, fallback: str) -> str:
    standard = STANDARD_BY_ID.get(type_id)
    return standard.name if standard else fallback


@dataclass
class MergeRequest:
    object_type: str
    primary_id: str
    secondary_id: str
    properties_to_keep: dict[str, Side]


@dataclass
class PreparedMerge:
    object_type_id: str
    object_type: str
    primary: dict[str, Any]
    secondary: dict[str, Any]
    plan: MergePlan
    merges_involved: int


async def prepare(*, account_id: int, request: MergeRequest, records: RecordsClient, sync: SyncClient,
                  session: AsyncSession) -> PreparedMerge:
    """Everything a merge checks and decides before anything is written."""
    primary_id = parse_id(request.primary_id, field="primaryObjectId", what="record id")
    secondary_id = parse_id(request.secondary_id, field="objectIdToMerge", what="record id")
    if primary_id == secondary_id:
        raise HubSpotError(400, f"A record cannot be merged with itself: primaryObjectId and objectIdToMerge are "
                                f"both {primary_id}", errors=[{"message": "same record", "code": "SAME_RECORD",
                                                               "in": "objectIdToMerge"}])
    primary, secondary = await asyncio.gather(
        records.snapshot(account_id=account_id, object_type=request.object_type, record_id=str(primary_id)),
        records.snapshot(account_id=account_id, object_type=request.object_type, record_id=str(secondary_id)))
    for field, wanted, snap in (("primaryObjectId", primary_id, primary), ("objectIdToMerge", secondary_id, secondary)):
        if snap is None:
            raise HubSpotError(404, f"No {request.object_type} record with id {wanted} exists in this account "
                                    f"({field}); both records of a merge must exist and be of the same object type",
                               category="OBJECT_NOT_FOUND", context={"id": [str(wanted)]})
        _check_mergeable(field, wanted, snap)
    assert primary is not None and secondary is not None
    type_id = str(primary["objectTypeId"])
    if str(secondary["objectTypeId"]) != type_id:
        raise HubSpotError(400, f"Records {primary_id} ({primary['objectTypeId']}) and {secondary_id} "
                                f"({secondary['objectTypeId']}) are of different object types and cannot be merged")
    await _refuse_while_syncing(sync, account_id, type_id)
    involved = max(merges_involved(str(primary_id), primary["properties"].get("hs_merged_object_ids"),
                                   str(secondary_id), secondary["properties"].get("hs_merged_object_ids")),
                   await repository.absorbed_in_lineage(session, account_id, type_id, [primary_id, secondary_id]) + 1)
    _refuse_over_limit(involved)
    overrides = {p: Strategy(s) for p, s in (await repository.rule_overrides(session, account_id, type_id)).items()}
    try:
        plan = plan_merge(object_type_id=type_id, primary=RecordView.from_snapshot(primary),
                          secondary=RecordView.from_snapshot(secondary),
                          properties_to_keep=request.properties_to_keep, overrides=overrides)
    except PlanError as exc:
        raise HubSpotError(400, str(exc)) from None
    # Events and history name standard types by their plural, whatever spelling the path used.
    object_type = str(primary.get("objectType") or _plural(type_id, request.object_type))
    return PreparedMerge(object_type_id=type_id, object_type=object_type, primary=primary, secondary=secondary,
                         plan=plan, merges_involved=involved)


async def _sync_enabled(sync: SyncClient, account_id: int, object_type: str) -> bool:
    """Fails closed: a company merge while sync might be on could break the Salesforce link."""
    try:
        return (await sync.sync_status(account_id, object_type)).syncEnabled
    except ServiceCallError:
        raise HubSpotError(503, SYNC_UNREACHABLE) from None


def _check_mergeable(field: str, wanted: int, snap: Any) -> None:
    """A record that exists may still be merged away (its id now an alias) or archived."""
    if str(snap.get("id")) != str(wanted):
        # records-svc answered for the record this id now aliases.
        raise _already_merged(field, wanted, str(snap.get("id")))
    if snap.get("mergedInto"):
        raise _already_merged(field, wanted, str(snap["mergedInto"]))
    if snap.get("archived"):
        raise HubSpotError(409, f"Record {wanted} ({field}) is archived; restore it before merging",
                           category="CONFLICT", context={"id": [str(wanted)]})


async def _refuse_while_syncing(sync: SyncClient, account_id: int, type_id: str) -> None:
    if type_id in SYNC_GUARDED_TYPES and await _sync_enabled(sync, account_id, SYNC_GUARDED_TYPES[type_id]):
        raise HubSpotError(409, "Companies cannot be merged while company sync with Salesforce is on; turn "
                                "company sync off, merge, then turn it back on", category="CONFLICT",
                           sub_category="SALESFORCE_SYNC_ENABLED")


def _refuse_over_limit(involved: int) -> None:
    if over_limit(involved):
        raise HubSpotError(414, LIMIT_MESSAGE, category="VALIDATION_ERROR",
                           context={"mergesInvolved": [str(involved)]})


def _already_merged(field: str, wanted: int, into: str) -> HubSpotError:
    return HubSpotError(409, f"Record {wanted} ({field}) was already merged into {into}; merge {into} instead",
                        category="CONFLICT", context={"id": [str(wanted)], "mergedInto": [into]})


async def merge(*, account_id: int, request: MergeRequest, records: RecordsClient, sync: SyncClient,
                sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Merge two records; answers records-svc's public view of the new record."""
    primary_id = parse_id(request.primary_id, field="primaryObjectId", what="record id")
    secondary_id = parse_id(request.secondary_id, field="objectIdToMerge", what="record id")
    async with transaction(sessionmaker) as locked:
        await repository.lock_records(locked, account_id, [primary_id, secondary_id])
        prepared = await prepare(account_id=account_id, request=request, records=records, sync=sync,
                                 session=locked)
        async with transaction(sessionmaker) as session:
            merge_id = await repository.insert_pending(
                session, account_id=account_id, object_type_id=prepared.object_type_id,
                object_type=prepared.object_type, primary_id=primary_id, secondary_ids=[secondary_id],
                properties_to_keep=dict(request.properties_to_keep),
                plan={"properties": prepared.plan.properties, "decisions": prepared.plan.decisions},
                merges_involved=prepared.merges_involved,
                snapshots=[("PRIMARY", prepared.primary), ("SECONDARY", prepared.secondary)])
        try:
            applied = await records.apply_merge(account_id, MergeApplyRequest(
                mergeId=str(merge_id), objectType=prepared.object_type, primaryId=primary_id,
                secondaryId=secondary_id, properties=prepared.plan.properties))
        except Exception as exc:
            async with transaction(sessionmaker) as session:
                await repository.mark_failed(session, merge_id=merge_id, error=getattr(exc, "message", repr(exc)))
            raise
        new_id = applied.id
        merged_ids = applied.mergedIds or [str(primary_id), str(secondary_id)]
        await repository.mark_applied(locked, merge_id=merge_id, account_id=account_id,
                                      object_type_id=prepared.object_type_id, result_id=int(new_id),
                                      merged_ids=merged_ids)
        await add_event(locked, CloudEvent(
            source=SOURCE, type="record.merged", subject=f"{prepared.object_type_id}/{new_id}",
            corralaccount=account_id,
            data={"objectType": prepared.object_type, "objectTypeId": prepared.object_type_id, "id": new_id,
                  "primaryId": str(primary_id), "secondaryId": str(secondary_id), "mergedIds": merged_ids,
                  "mergeId": str(merge_id), "keepSyncing": str(primary_id)}))
    log.info("records merged", merge_id=merge_id, new_id=new_id, object_type=prepared.object_type_id)
    return applied.record or {"id": new_id}


async def preview(*, account_id: int, request: MergeRequest, records: RecordsClient, sync: SyncClient,
                  sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with transaction(sessionmaker) as session:
        prepared = await prepare(account_id=account_id, request=request, records=records, sync=sync,
                                 session=session)
    props = dict(prepared.plan.properties)
    return {
        "objectType": prepared.object_type, "objectTypeId": prepared.object_type_id,
        "primaryObjectId": str(prepared.primary["id"]), "objectIdToMerge": str(prepared.secondary["id"]),
        "properties": props, "decisions": prepared.plan.decisions,
        "createdAt": props.get("createdate"), "mergesInvolved": prepared.merges_involved,
        "associations": len(prepared.primary.get("associations") or [])
        + len(prepared.secondary.get("associations") or []),
    }


async def unmerge(*, account_id: int, merge_id: int, records: RecordsClient,
                  sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with transaction(sessionmaker) as locked:
        found = await repository.get_merge(locked, account_id, merge_id)
        if found is None:
            raise HubSpotError(404, f"Merge {merge_id} does not exist", category="OBJECT_NOT_FOUND")
        await repository.lock_records(locked, account_id, [found["primary_id"], *secondaries_of(found),
                                                           *( [found["result_id"]] if found["result_id"] else [])])
        row = await repository.get_merge(locked, account_id, merge_id)
        assert row is not None
        if row["status"] != "APPLIED":
            reason = {"UNMERGED": "it was already unmerged", "FAILED": "it never applied",
                      "PENDING": "it has not finished applying"}.get(row["status"], row["status"])
            raise HubSpotError(409, f"Merge {merge_id} cannot be unmerged: {reason}", category="CONFLICT")
        later = await repository.later_merge_of(locked, account_id, row["object_type_id"], row["result_id"],
                                                merge_id)
        if later is not None:
            raise HubSpotError(409, f"Record {row['result_id']} produced by merge {merge_id} was merged again by "
                                    f"merge {later}; unmerge {later} first", category="CONFLICT",
                               context={"mergeId": [str(later)]})
        primary_snapshot, secondary_snapshots = await repository.snapshots(locked, merge_id)
        report = (await records.unapply_merge(account_id, MergeUnapplyRequest(
            mergeId=str(merge_id), objectType=row["object_type"], mergedId=row["result_id"],
            primary=primary_snapshot, secondaries=secondary_snapshots))).model_dump()
        await repository.mark_unmerged(locked, merge_id=merge_id, report=report)
        await add_event(locked, CloudEvent(
            source=SOURCE, type="record.unmerged", subject=f"{row['object_type_id']}/{row['primary_id']}",
            corralaccount=account_id,
            data={"objectType": row["object_type"], "objectTypeId": row["object_type_id"],
                  "id": str(row["primary_id"]), "primaryId": str(row["primary_id"]),
                  "secondaryId": str(row["secondary_id"]),
                  "secondaryIds": [str(i) for i in secondaries_of(row)], "mergedId": str(row["result_id"]),
                  "mergeId": str(merge_id), "keptChanges": report.get("keptChanges") or {},
                  "conflicts": report.get("conflicts") or []}))
    return {"mergeId": str(merge_id), "status": "UNMERGED", "primaryId": str(row["primary_id"]),
            "secondaryId": str(row["secondary_id"]), "secondaryIds": [str(i) for i in secondaries_of(row)],
            "mergedId": str(row["result_id"]),
            "keptChanges": report.get("keptChanges") or {},
            "restoredAssociations": report.get("restoredAssociations", report.get("movedAssociations", 0)),
            "conflicts": report.get("conflicts") or []}


def secondaries_of(row: dict[str, Any]) -> list[int]:
    return [int(i) for i in row.get("secondary_ids") or [row["secondary_id"]]]


# --- cluster merges (beyond HubSpot) ---------------------------------------------------------------------

MAX_CLUSTER = 100


@dataclass
class ClusterMergeRequest:
    object_type: str
    primary_id: str
    secondary_ids: list[str]
    # property -> "PRIMARY" or the id of the record whose value to keep
    properties_to_keep: dict[str, str]


async def merge_cluster(*, account_id: int, request: ClusterMergeRequest, records: RecordsClient, sync: SyncClient,
                        sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """Merge every record of a cluster into one new record in one step: one merge row, one apply in
    records-svc (one transaction), one `record.merged` event; unmerge restores them all."""
    primary_id = parse_id(request.primary_id, field="primaryObjectId", what="record id")
    if not request.secondary_ids or len(request.secondary_ids) >= MAX_CLUSTER:
        raise HubSpotError(400, f"objectIdsToMerge must list 1 to {MAX_CLUSTER - 1} records")
    secondary_ids = [parse_id(v, field=f"objectIdsToMerge[{i}]", what="record id") for i, v in enumerate(request.secondary_ids)]
    everyone = [primary_id, *secondary_ids]
    repeated = sorted({i for i in everyone if everyone.count(i) > 1})
    if repeated:
        raise HubSpotError(400, f"A record cannot be merged with itself: {', '.join(map(str, repeated))} appears "
                                "more than once", errors=[{"message": "same record", "code": "SAME_RECORD",
                                                           "in": "objectIdsToMerge"}])
    async with transaction(sessionmaker) as locked:
        await repository.lock_records(locked, account_id, everyone)
        snapshots = await asyncio.gather(*(
            records.snapshot(account_id=account_id, object_type=request.object_type, record_id=str(i))
            for i in everyone))
        fields = ["primaryObjectId", *(f"objectIdsToMerge[{i}]" for i in range(len(secondary_ids)))]
        for field_name, wanted, snap in zip(fields, everyone, snapshots, strict=True):
            if snap is None:
                raise HubSpotError(404, f"No {request.object_type} record with id {wanted} exists in this account "
                                        f"({field_name}); every record of a cluster merge must exist and be of the "
                                        "same object type", category="OBJECT_NOT_FOUND",
                                   context={"id": [str(wanted)]})
            _check_mergeable(field_name, wanted, snap)
        primary, secondaries = snapshots[0], list(snapshots[1:])
        type_id = str(primary["objectTypeId"])
        for field_name, snap in zip(fields[1:], secondaries, strict=True):
            if str(snap["objectTypeId"]) != type_id:
                raise HubSpotError(400, f"Record {snap['id']} ({field_name}) is of object type {snap['objectTypeId']}, "
                                        f"the primary of {type_id}: a cluster merge takes records of one type")
        await _refuse_while_syncing(sync, account_id, type_id)
        # Each absorbed record counts as one merge, as if the cluster were merged pair by pair.
        earlier = max(sum(merges_involved(str(s["id"]), s["properties"].get("hs_merged_object_ids"), "", "") - 1
                          for s in snapshots),
                      await repository.absorbed_in_lineage(locked, account_id, type_id, everyone))
        involved = earlier + len(secondary_ids)
        _refuse_over_limit(involved)
        overrides = {p: Strategy(v) for p, v in (await repository.rule_overrides(locked, account_id, type_id)).items()}
        try:
            plan = plan_cluster_merge(object_type_id=type_id, primary=RecordView.from_snapshot(primary),
                                      secondaries=[RecordView.from_snapshot(x) for x in secondaries],
                                      properties_to_keep=request.properties_to_keep, overrides=overrides)
        except PlanError as exc:
            raise HubSpotError(400, str(exc)) from None
        object_type = str(primary.get("objectType") or _plural(type_id, request.object_type))
        async with transaction(sessionmaker) as session:
            merge_id = await repository.insert_pending(
                session, account_id=account_id, object_type_id=type_id, object_type=object_type,
                primary_id=primary_id, secondary_ids=secondary_ids, properties_to_keep=request.properties_to_keep,
                plan={"properties": plan.properties, "decisions": plan.decisions}, merges_involved=involved,
                snapshots=[("PRIMARY", primary), *(("SECONDARY", x) for x in secondaries)])
        try:
            applied = await records.apply_merge(account_id, MergeApplyRequest(
                mergeId=str(merge_id), objectType=object_type, primaryId=primary_id, secondaryIds=secondary_ids,
                properties=plan.properties))
        except Exception as exc:
            async with transaction(sessionmaker) as session:
                await repository.mark_failed(session, merge_id=merge_id, error=getattr(exc, "message", repr(exc)))
            raise
        new_id = applied.id
        merged_ids = applied.mergedIds or [str(i) for i in everyone]
        await repository.mark_applied(locked, merge_id=merge_id, account_id=account_id, object_type_id=type_id,
                                      result_id=int(new_id), merged_ids=merged_ids)
        await add_event(locked, CloudEvent(
            source=SOURCE, type="record.merged", subject=f"{type_id}/{new_id}", corralaccount=account_id,
            data={"objectType": object_type, "objectTypeId": type_id, "id": new_id, "primaryId": str(primary_id),
                  "secondaryId": str(secondary_ids[0]), "secondaryIds": [str(i) for i in secondary_ids],
                  "mergedIds": merged_ids, "mergeId": str(merge_id), "keepSyncing": str(primary_id)}))
    log.info("cluster merged", merge_id=merge_id, new_id=new_id, records=len(everyone))
    return {"mergeId": str(merge_id), "mergesInvolved": involved, **(applied.record or {"id": new_id})}


def merge_view(row: dict[str, Any]) -> dict[str, Any]:
    plan = row.get("plan") or {}
    return {
        "id": str(row["id"]), "objectType": row["object_type"], "objectTypeId": row["object_type_id"],
        "status": row["status"], "primaryObjectId": str(row["primary_id"]),
        "objectIdToMerge": str(row["secondary_id"]),
        "objectIdsToMerge": [str(i) for i in secondaries_of(row)],
        "mergedObjectId": str(row["result_id"]) if row["result_id"] is not None else None,
        "mergedIds": row.get("merged_ids") or [], "propertiesToKeep": row.get("properties_to_keep") or {},
        "properties": plan.get("properties") or {}, "decisions": plan.get("decisions") or {},
        "mergesInvolved": row["merges_involved"], "error": row.get("error"),
        "unmerge": row.get("unmerge_report"),
        "createdAt": timestamp_or_none(row["created_at"]), "appliedAt": timestamp_or_none(row.get("applied_at")),
        "unmergedAt": timestamp_or_none(row.get("unmerged_at")),
    }



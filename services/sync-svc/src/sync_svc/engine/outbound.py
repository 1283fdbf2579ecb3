"""Outbound: queued Corral changes to Salesforce, in bulk.

One flush of one object:
1. settle create intents left by a flush that died after sending creates (see `settle_intents`);
2. read the queued records from records-svc in one call (values and per-property change times);
3. look up unlinked records in Salesforce by their match key (contacts/leads by email, five queries per
   call) so an existing Salesforce record is linked instead of duplicated;
4. read the linked Salesforce rows in bulk (collections retrieve, 10,000 ids per call), because every
   rule needs Salesforce's current value: "prefer Salesforce unless blank" writes only into a blank,
   two-way compares change times, and Salesforce's values flow back to Corral;
5. decide every field (`domain.reconcile`), record create intents and commit them, then write creates
   and updates with sObject Collections packed five to a composite call;
6. write what Salesforce won (and the link properties) into records-svc with source SALESFORCE;
7. in one transaction: links and shadows, the queue rows handled, errors recorded or cleared, events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from crm_common.db import transaction
from crm_common.outbox import add_events
from crm_common.timestamps import format_timestamp

from sync_svc.domain.errors import Direction, category_of, next_retry
from sync_svc.domain.objects import LAST_SYNC_PROPERTY
from sync_svc.domain.reconcile import CorralSide, RecordSync, reconcile
from sync_svc.engine.context import Cycle, ObjectSetup, error_event, synced_event
from sync_svc.records import CorralRecord
from sync_svc.repositories import errors as error_repo
from sync_svc.repositories import links as link_repo
from sync_svc.repositories import queue as queue_repo
from sync_svc.repositories.errors import ErrorWrite
from sync_svc.repositories.links import LinkWrite
from sync_svc.salesforce.client import RowWrite, parse_salesforce_datetime, soql_string
from sync_svc.salesforce.errors import SalesforceErrorItem, SalesforceUnavailable

log = structlog.get_logger(__name__)
# SOQL travels in a URL; IN lists are cut so that one query stays well under Salesforce's 16 KB URI limit.
MAX_IN_LIST_CHARS = 9_000


@dataclass
class Outcome:
    """One record's way through a flush."""

    record: CorralRecord
    kind: str  # create | update | link
    sync: RecordSync
    salesforce_id: str | None = None
    salesforce_row: dict[str, Any] | None = None
    ok: bool = False
    errors: list[SalesforceErrorItem] = field(default_factory=list)
    transient: bool = False
    corral_refused: dict[str, str] = field(default_factory=dict)


class Timer:
    """Seconds per phase of a flush, for its log line (where a slow flush spends its time)."""

    def __init__(self) -> None:
        self._at = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._at, 3)
        self._at = now


def corral_side(record: CorralRecord) -> CorralSide:
    return CorralSide(id=record.id, properties=record.properties, changed_at=record.changed_at)


def in_lists(values: list[str]) -> list[list[str]]:
    """Values cut into IN lists that keep each query short enough for a URL."""
    chunks: list[list[str]] = []
    current: list[str] = []
    size = 0
    for value in values:
        literal = len(soql_string(value)) + 1
        if current and size + literal > MAX_IN_LIST_CHARS:
            chunks.append(current)
            current, size = [], 0
        current.append(value)
        size += literal
    if current:
        chunks.append(current)
    return chunks


async def query_all(cycle: Cycle, soqls: list[str]) -> list[dict[str, Any]]:
    """Every row of several queries: first pages packed in composite calls, further pages one call each."""
    rows: list[dict[str, Any]] = []
    for first in await cycle.client.query_first_pages(soqls):
        if isinstance(first, Exception):
            raise first
        async for page in cycle.client.query_pages("", first=first):
            rows.extend(page.records)
    return rows


async def flush(cycle: Cycle, setup: ObjectSetup, *, record_ids: list[int] | None = None,
                min_age_seconds: float = 0.0) -> None:
    """Write the queued changes of one object (or only `record_ids`, queued or not)."""
    async with cycle.sessionmaker() as db:
        intents = await link_repo.intents(db, cycle.account_id, setup.name)
        if record_ids is None:
            due = await queue_repo.due(db, cycle.account_id, setup.name, cycle.settings.flush_batch_size,
                                       min_age_seconds=min_age_seconds)
        else:
            due = await queue_repo.rows_for(db, cycle.account_id, setup.name, record_ids)
    if intents:
        await settle_intents(cycle, setup, intents)
    if not due:
        return
    seen = {row["record_id"]: row["changed_at"] for row in due}
    attempts = {row["record_id"]: row["attempts"] for row in due}
    counts = cycle.counts("OUTBOUND", setup.name)
    ids = list(seen)
    timer = Timer()
    records = await cycle.records.read(cycle.account_id, setup.type_id, ids, setup.corral_properties())
    timer.lap("read_corral")
    async with cycle.sessionmaker() as db:
        links = await link_repo.for_records(db, cycle.account_id, setup.name, ids)
    live = [records[i] for i in ids if i in records and not records[i].archived and not records[i].merged_into]
    live_ids = {r.id for r in live}
    counts.add("gone", len(ids) - len(live))
    unlinked = [r for r in live if r.id not in links]
    skipped: list[CorralRecord] = []
    if setup.match_key:
        key_property = setup.match_key[0]
        skipped = [r for r in unlinked if not r.properties.get(key_property)]
        unlinked = [r for r in unlinked if r.properties.get(key_property)]
        counts.add("skippedNoEmail", len(skipped))
    try:
        matches = await match_existing(cycle, setup, unlinked)
        linked_rows = await cycle.client.retrieve(setup.salesforce_object,
                                                  [links[r.id]["salesforce_id"] for r in live if r.id in links],
                                                  setup.salesforce_fields())
    except SalesforceUnavailable as exc:
        await _postpone(cycle, setup, seen, attempts, reason=str(exc))
        raise
    timer.lap("read_salesforce")
    outcomes: list[Outcome] = []
    missing: list[CorralRecord] = []
    skipped_ids = {r.id for r in skipped}
    for record in live:
        if record.id in skipped_ids:
            continue
        link = links.get(record.id)
        if link is not None:
            row = linked_rows.get(link["salesforce_id"])
            if row is None:
                missing.append(record)
                continue
            sync = reconcile(setup.mappings, corral=corral_side(record), salesforce_row=row, shadow=link["shadow"],
                             salesforce_changed_at=parse_salesforce_datetime(row.get("LastModifiedDate")))
            outcomes.append(Outcome(record, "update", sync, link["salesforce_id"], row))
        elif record.id in matches:
            row = matches[record.id]
            sync = reconcile(setup.mappings, corral=corral_side(record), salesforce_row=row, shadow=None,
                             salesforce_changed_at=parse_salesforce_datetime(row.get("LastModifiedDate")))
            outcomes.append(Outcome(record, "link", sync, row["Id"], row))
        else:
            sync = reconcile(setup.mappings, corral=corral_side(record), salesforce_row=None, shadow=None,
                             salesforce_changed_at=None)
            outcomes.append(Outcome(record, "create", sync))
    timer.lap("decide")
    await _write_salesforce(cycle, setup, outcomes)
    timer.lap("write_salesforce")
    await _write_corral(cycle, setup, outcomes)
    timer.lap("write_corral")
    await _finish(cycle, setup, outcomes, seen=seen, attempts=attempts, missing=missing,
                  handled_without_sync=[r.id for r in skipped] + [i for i in ids if i not in live_ids])
    timer.lap("store")
    log.info("outbound flush", account_id=cycle.account_id, object_type=setup.name, records=len(ids),
             seconds=timer.laps)


async def _write_salesforce(cycle: Cycle, setup: ObjectSetup, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.sync.problems:
            outcome.errors = [SalesforceErrorItem("INVALID_VALUE", f"{prop}: {message}", (prop,))
                              for prop, message in outcome.sync.problems.items()]
    creates = [o for o in outcomes if o.kind == "create" and not o.errors]
    updates = [o for o in outcomes if o.kind != "create" and o.sync.to_salesforce and not o.errors]
    for outcome in outcomes:
        if outcome.kind != "create" and not outcome.sync.to_salesforce and not outcome.errors:
            outcome.ok = True
    if not creates and not updates:
        return
    if creates:
        # Committed before the creates leave: a crash after Salesforce created them but before the links are
        # stored is settled by the next flush instead of creating them again.
        intents = []
        for o in creates:
            if setup.match_key:
                key_field, key_value = setup.match_key[1], o.record.properties.get(setup.match_key[0], "")
            else:
                key_field, key_value = setup.name_field, str(o.sync.to_salesforce.get(setup.name_field) or "")
            intents.append((o.record.id, key_field, key_value))
        async with transaction(cycle.sessionmaker) as db:
            await link_repo.add_intents(db, cycle.account_id, setup.name, setup.salesforce_object, intents)
    sobject = {"type": setup.salesforce_object}
    try:
        created, updated = await cycle.client.write([
            RowWrite("create", [{"attributes": sobject, **o.sync.to_salesforce} for o in creates]),
            RowWrite("update", [{"attributes": sobject, "Id": o.salesforce_id, **o.sync.to_salesforce}
                                for o in updates]),
        ])
    except SalesforceUnavailable as exc:
        for outcome in [*creates, *updates]:
            outcome.errors = [SalesforceErrorItem("SERVER_UNAVAILABLE", str(exc))]
            outcome.transient = True
        return
    for outcome, result in [*zip(creates, created, strict=True), *zip(updates, updated, strict=True)]:
        if result.success:
            outcome.ok = True
            if outcome.kind == "create":
                outcome.salesforce_id = result.id
        else:
            outcome.errors = result.errors
            outcome.transient = result.transient


async def _write_corral(cycle: Cycle, setup: ObjectSetup, outcomes: list[Outcome]) -> None:
    """What Salesforce won, the link and the sync time, for every record that synced."""
    now = format_timestamp(datetime.now(UTC))
    rows: list[dict[str, Any]] = []
    by_ref: dict[int, Outcome] = {}
    for ref, outcome in enumerate(outcomes):
        if not outcome.ok:
            continue
        properties: dict[str, Any] = dict(outcome.sync.to_corral)
        if outcome.record.properties.get(setup.link_property, "") != (outcome.salesforce_id or ""):
            properties[setup.link_property] = outcome.salesforce_id
        if properties or outcome.sync.to_salesforce:
            properties[LAST_SYNC_PROPERTY] = now
        if properties:
            rows.append({"ref": ref, "id": str(outcome.record.id), "properties": properties})
            by_ref[ref] = outcome
    if not rows:
        return
    try:
        results = await cycle.records.write(cycle.account_id, setup.type_id, rows, operation="UPDATE",
                                            id_property="hs_object_id", operation_id=cycle.operation_id)
    except Exception as exc:  # noqa: BLE001 - records-svc unavailable: keep what Salesforce has, retry Corral's part
        log.warning("records-svc write failed after a salesforce write", account_id=cycle.account_id,
                    object_type=setup.name, error=repr(exc))
        for outcome in by_ref.values():
            outcome.corral_refused = {p: "records-svc unavailable" for p in outcome.sync.to_corral}
            outcome.transient = True
        return
    for result in results:
        outcome = by_ref.get(result["ref"])
        if outcome is None:
            continue
        for error in result["errors"]:
            if error.get("property"):
                outcome.corral_refused[error["property"]] = error["message"]
        if result["status"] == "ERROR" and not result["errors"]:
            outcome.corral_refused.update({p: "refused by records-svc" for p in outcome.sync.to_corral})


async def _postpone(cycle: Cycle, setup: ObjectSetup, seen: dict[int, datetime], attempts: dict[int, int], *,
                    reason: str) -> None:
    now = datetime.now(UTC)
    async with transaction(cycle.sessionmaker) as db:
        await queue_repo.retry_later(db, cycle.account_id, setup.name, {
            i: next_retry(attempts[i] + 1, now, base_seconds=cycle.settings.error_retry_seconds / 4,
                          max_seconds=cycle.settings.error_retry_max_seconds) for i in seen})
    log.warning("outbound flush postponed", account_id=cycle.account_id, object_type=setup.name, reason=reason)


async def _finish(cycle: Cycle, setup: ObjectSetup, outcomes: list[Outcome], *, seen: dict[int, datetime],
                  attempts: dict[int, int], missing: list[CorralRecord], handled_without_sync: list[int]) -> None:
    now = datetime.now(UTC)
    counts = cycle.counts("OUTBOUND", setup.name)
    link_writes: list[LinkWrite] = []
    done: dict[int, datetime] = {i: seen[i] for i in handled_without_sync}
    retries: dict[int, datetime] = {}
    cleared: list[str] = []
    errors: list[ErrorWrite] = []
    events = []
    settings = cycle.settings
    for outcome in outcomes:
        record_id = outcome.record.id
        if outcome.ok and outcome.salesforce_id:
            shadow = {k: v for k, v in outcome.sync.shadow.items() if k not in outcome.corral_refused}
            modstamp = None
            if outcome.salesforce_row is not None and not outcome.sync.to_salesforce:
                modstamp = parse_salesforce_datetime(outcome.salesforce_row.get("SystemModstamp"))
            link_writes.append(LinkWrite(record_id, outcome.salesforce_id, shadow, modstamp))
            wrote = [*outcome.sync.to_salesforce, *outcome.sync.to_corral]
            counts.add({"create": "created", "link": "linked", "update": "updated"}[outcome.kind]
                       if (wrote or outcome.kind != "update") else "unchanged")
            counts.add("conflicts", len(outcome.sync.conflicts))
            if outcome.corral_refused and outcome.transient:
                retries[record_id] = next_retry(attempts[record_id] + 1, now,
                                                base_seconds=settings.error_retry_seconds / 4,
                                                max_seconds=settings.error_retry_max_seconds)
            else:
                done[record_id] = seen[record_id]
            if outcome.corral_refused and not outcome.transient:
                errors.append(ErrorWrite(
                    direction=Direction.INBOUND, object_type=setup.name, category="PROPERTY_VALUES",
                    code="INVALID_PROPERTY_VALUE", record_id=record_id, salesforce_id=outcome.salesforce_id,
                    message="; ".join(f"{p}: {m}" for p, m in outcome.corral_refused.items()),
                    fields=list(outcome.corral_refused)))
            else:
                cleared.append(str(record_id))
            if wrote or outcome.kind != "update":
                events.append(synced_event(cycle, setup, record_id=record_id, salesforce_id=outcome.salesforce_id,
                                           direction=Direction.OUTBOUND,
                                           operation={"create": "CREATED", "link": "LINKED",
                                                      "update": "UPDATED"}[outcome.kind],
                                           properties=sorted({m.property for m in setup.mappings
                                                              if m.field in outcome.sync.to_salesforce}
                                                             | set(outcome.sync.to_corral))))
            continue
        code = outcome.errors[0].code if outcome.errors else "UNKNOWN_EXCEPTION"
        counts.add("failed")
        tries = attempts[record_id] + 1
        if outcome.transient:
            retries[record_id] = next_retry(tries, now, base_seconds=settings.error_retry_seconds / 4,
                                            max_seconds=settings.error_retry_max_seconds)
        else:
            done[record_id] = seen[record_id]
        errors.append(ErrorWrite(
            direction=Direction.OUTBOUND, object_type=setup.name, category=category_of(code), code=code,
            record_id=record_id, salesforce_id=outcome.salesforce_id,
            message="; ".join(e.message for e in outcome.errors) or "Salesforce refused the record",
            fields=sorted({f for e in outcome.errors for f in e.fields}), transient=outcome.transient,
            next_retry_at=None if outcome.transient else next_retry(
                tries, now, base_seconds=settings.error_retry_seconds, max_seconds=settings.error_retry_max_seconds)))
    for record in missing:
        done[record.id] = seen[record.id]
        counts.add("failed")
        errors.append(ErrorWrite(
            direction=Direction.OUTBOUND, object_type=setup.name, category="PERMISSIONS", code="ENTITY_IS_DELETED",
            record_id=record.id,
            message=f"The linked Salesforce {setup.salesforce_object} no longer exists or the integration user "
                    "cannot see it"))
    async with transaction(cycle.sessionmaker) as db:
        await link_repo.save(db, cycle.account_id, setup.name, setup.salesforce_object, link_writes)
        await link_repo.clear_intents(db, cycle.account_id, setup.name,
                                      [o.record.id for o in outcomes if o.kind == "create"])
        await queue_repo.done(db, cycle.account_id, setup.name, done)
        await queue_repo.retry_later(db, cycle.account_id, setup.name, retries)
        await error_repo.clear(db, cycle.account_id, Direction.OUTBOUND, setup.name, cleared)
        recorded = await error_repo.record(db, cycle.account_id, errors)
        events.extend(error_event(cycle.account_id, row) for row in recorded)
        await add_events(db, events)


async def match_existing(cycle: Cycle, setup: ObjectSetup, records: list[CorralRecord]) -> dict[int, dict[str, Any]]:
    """Unlinked Corral records whose match key (email) an unlinked Salesforce record holds: the oldest such
    record (HubSpot links the first match) instead of a new one."""
    if not setup.match_key or not records:
        return {}
    prop, field_name = setup.match_key
    by_value: dict[str, int] = {}
    for record in records:
        by_value.setdefault(record.properties[prop].strip().lower(), record.id)
    fields = ", ".join(setup.salesforce_fields())
    soqls = [f"SELECT {fields}, CreatedDate FROM {setup.salesforce_object} WHERE {field_name} IN "
             f"({', '.join(soql_string(v) for v in chunk)}) ORDER BY CreatedDate, Id"
             for chunk in in_lists(list(by_value))]
    rows = await query_all(cycle, soqls)
    async with cycle.sessionmaker() as db:
        taken = await link_repo.for_salesforce(db, cycle.account_id, setup.salesforce_object, [r["Id"] for r in rows])
    matches: dict[int, dict[str, Any]] = {}
    for row in rows:
        value = str(row.get(field_name) or "").strip().lower()
        record_id = by_value.get(value)
        if record_id is not None and record_id not in matches and row["Id"] not in taken:
            matches[record_id] = row
    return matches


async def settle_intents(cycle: Cycle, setup: ObjectSetup, intents: list[dict[str, Any]]) -> None:
    """Creates whose answer never arrived: find what the integration user created with the same key and link
    it; an intent with no such record was never created and is dropped (its queue row sends it again)."""
    by_field: dict[str, list[dict[str, Any]]] = {}
    for intent in intents:
        by_field.setdefault(intent["match_field"], []).append(intent)
    user = soql_string(cycle.integration_user_id)
    soqls = []
    for field_name, group in by_field.items():
        values = sorted({i["match_value"] for i in group if i["match_value"]})
        soqls.extend(f"SELECT Id, {field_name}, CreatedDate FROM {setup.salesforce_object} WHERE CreatedById = {user} "
                     f"AND {field_name} IN ({', '.join(soql_string(v) for v in chunk)}) ORDER BY CreatedDate, Id"
                     for chunk in in_lists(values))
    rows = await query_all(cycle, soqls) if soqls else []
    async with cycle.sessionmaker() as db:
        taken = await link_repo.for_salesforce(db, cycle.account_id, setup.salesforce_object, [r["Id"] for r in rows])
    candidates: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if row["Id"] in taken:
            continue
        for field_name in by_field:
            if field_name in row:
                candidates.setdefault((field_name, str(row[field_name] or "").lower()), []).append(row["Id"])
    found: dict[int, str] = {}
    for intent in intents:
        pool = candidates.get((intent["match_field"], intent["match_value"].lower()), [])
        if pool:
            found[intent["record_id"]] = pool.pop(0)
    if found:
        rows_out = [{"ref": i, "id": str(record_id), "properties": {setup.link_property: salesforce_id}}
                    for i, (record_id, salesforce_id) in enumerate(found.items())]
        await cycle.records.write(cycle.account_id, setup.type_id, rows_out, operation="UPDATE",
                                  id_property="hs_object_id", operation_id=cycle.operation_id)
    async with transaction(cycle.sessionmaker) as db:
        await link_repo.save(db, cycle.account_id, setup.name, setup.salesforce_object,
                             [LinkWrite(record_id, salesforce_id, {}) for record_id, salesforce_id in found.items()])
        await link_repo.clear_intents(db, cycle.account_id, setup.name, [i["record_id"] for i in intents])
    cycle.counts("OUTBOUND", setup.name).add("settledCreates", len(found))
    log.info("create intents settled", account_id=cycle.account_id, object_type=setup.name, intents=len(intents),
             found=len(found))


"""Inbound: Salesforce changes to Corral, in bulk.

Per enabled object, the rows changed since the object's watermark are read with a SOQL query over
SystemModstamp (indexed; it also moves on automated changes), ordered by SystemModstamp and Id, with
every mapped field, in pages of up to 2,000. The first page of every object travels in one composite
call, so an idle poll costs one call (two objects per call, with the count below) and 10,000 changes cost
five.

A transaction that commits late can carry a stamp older than the watermark. The same composite call counts
Salesforce's rows stamped in the `poll_overlap_seconds` before the watermark; when Salesforce has more there
than the links record as handled, that window is read again (rows already handled, whose SystemModstamp the
link keeps, are skipped). Re-reading the window on every poll instead would cost five calls per poll for two
minutes after every 10,000 changes, which idle polls must not.

Why not getUpdated: its windows ignore seconds and must span at least a minute, and Salesforce's
`latestDateCovered` may lag hours behind, which would make every poll re-read the same ids (one more
call each time) where the query needs none.

Rows whose synced fields all equal the shadow (our own writes coming back, or saves that changed nothing
we map) go nowhere: no records-svc call, no history, no event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from crm_common.db import transaction
from crm_common.outbox import add_events
from crm_common.timestamps import format_timestamp

from sync_svc.domain.errors import Direction, category_of
from sync_svc.domain.objects import LAST_SYNC_PROPERTY
from sync_svc.domain.reconcile import CorralSide, RecordSync, is_echo, reconcile
from sync_svc.engine.context import Cycle, ObjectSetup, error_event, synced_event
from sync_svc.records import CorralRecord
from sync_svc.repositories import errors as error_repo
from sync_svc.repositories import links as link_repo
from sync_svc.repositories import mappings as mapping_repo
from sync_svc.repositories.errors import ErrorWrite
from sync_svc.repositories.links import LinkWrite
from sync_svc.salesforce.client import RowWrite, parse_salesforce_datetime, soql_datetime
from sync_svc.salesforce.errors import SalesforceApiError, SalesforceErrorItem, SalesforceUnavailable

log = structlog.get_logger(__name__)


@dataclass
class Change:
    """One changed Salesforce row and what happens to it."""

    row: dict[str, Any]
    link: dict[str, Any] | None = None
    record: CorralRecord | None = None
    sync: RecordSync | None = None
    corral_id: int | None = None
    created: bool = False
    salesforce_errors: list[SalesforceErrorItem] = field(default_factory=list)
    corral_refused: dict[str, str] = field(default_factory=dict)
    corral_failed: str | None = None

    @property
    def salesforce_id(self) -> str:
        return str(self.row["Id"])

    @property
    def modstamp(self) -> datetime | None:
        return parse_salesforce_datetime(self.row.get("SystemModstamp"))


def changes_query(setup: ObjectSetup, since: datetime, *, until: datetime | None = None) -> str:
    upper = f" AND SystemModstamp <= {soql_datetime(until)}" if until is not None else ""
    return (f"SELECT {', '.join(setup.salesforce_fields())} FROM {setup.salesforce_object} "
            f"WHERE SystemModstamp > {soql_datetime(since)}{upper} ORDER BY SystemModstamp, Id")


async def poll(cycle: Cycle, setups: list[ObjectSetup]) -> None:
    """Every enabled object's changes since its watermark; an object without one starts from now."""
    fresh = [s for s in setups if s.watermark is None]
    if fresh:
        # Sync started or the object was enabled just now: only later changes come in, as at HubSpot.
        await cycle.client.limits()  # its Date header is the org's clock
        now = cycle.client.server_time or cycle.server_now()
        for setup in fresh:
            await _advance(cycle, setup, now, first=True)
    ready = [s for s in setups if s not in fresh]
    if not ready:
        return
    overlap = timedelta(seconds=cycle.settings.poll_overlap_seconds)
    windows = {s.name: max(s.watermark - overlap, s.started_from or s.watermark - overlap) for s in ready}
    soqls = []
    for setup in ready:
        soqls.append(changes_query(setup, setup.watermark))
        soqls.append(f"SELECT COUNT() FROM {setup.salesforce_object} WHERE SystemModstamp > "
                     f"{soql_datetime(windows[setup.name])} AND SystemModstamp <= {soql_datetime(setup.watermark)}")
    answers = await cycle.client.query_first_pages(soqls)
    for index, setup in enumerate(ready):
        first, window_count = answers[2 * index], answers[2 * index + 1]
        for answer in (first, window_count):
            if isinstance(answer, SalesforceApiError):
                raise answer
        assert not isinstance(window_count, SalesforceApiError) and not isinstance(first, SalesforceApiError)
        async with cycle.sessionmaker() as db:
            handled = await link_repo.count_handled(db, cycle.account_id, setup.salesforce_object,
                                                    after=windows[setup.name], until=setup.watermark)
        if window_count.total_size > handled:
            # A late commit (or rows still failing): the window once more, then what is new.
            cycle.counts("INBOUND", setup.name).add("overlapReread")
            async for page in cycle.client.query_pages(changes_query(setup, windows[setup.name], until=setup.watermark)):
                await handle_rows(cycle, setup, page.records)
        newest = setup.watermark
        async for page in cycle.client.query_pages("", first=first):
            await handle_rows(cycle, setup, page.records)
            stamps = [s for s in (parse_salesforce_datetime(r.get("SystemModstamp")) for r in page.records) if s]
            if stamps and max(stamps) > newest:
                newest = max(stamps)
                await _advance(cycle, setup, newest)


async def _advance(cycle: Cycle, setup: ObjectSetup, watermark: datetime, *, first: bool = False) -> None:
    async with transaction(cycle.sessionmaker) as db:
        await mapping_repo.set_watermark(db, cycle.account_id, setup.name, watermark, starting=first)
    setup.watermark = watermark
    if first:
        setup.started_from = watermark


async def handle_rows(cycle: Cycle, setup: ObjectSetup, rows: list[dict[str, Any]], *, force: bool = False) -> None:
    """Changed Salesforce rows of one object into Corral (and back where the rules say Corral wins); `force`
    looks at rows already handled too (a retry asked for by a person)."""
    counts = cycle.counts("INBOUND", setup.name)
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row and row.get("Id"):
            newest[str(row["Id"])] = row
    if not newest:
        return
    counts.add("read", len(newest))
    async with cycle.sessionmaker() as db:
        links = await link_repo.for_salesforce(db, cycle.account_id, setup.salesforce_object, list(newest))
    changes: list[Change] = []
    echoes: dict[str, datetime] = {}
    for salesforce_id, row in newest.items():
        link = links.get(salesforce_id)
        change = Change(row, link)
        stamp = change.modstamp
        if not force and link is not None and link["salesforce_modstamp"] is not None and stamp is not None \
                and link["salesforce_modstamp"] >= stamp:
            counts.add("alreadyHandled")
            continue
        if not force and link is not None and is_echo(setup.mappings, row, link["shadow"]):
            if stamp is not None:
                echoes[salesforce_id] = stamp
            continue
        changes.append(change)
    counts.add("unchanged", len(echoes))
    await _match(cycle, setup, changes)
    await _read_corral(cycle, setup, changes)
    for change in changes:
        if change.corral_failed:
            continue
        shadow = change.link["shadow"] if change.link is not None else None
        change.sync = reconcile(
            setup.mappings, corral=CorralSide(change.record.id, change.record.properties, change.record.changed_at)
            if change.record else None, salesforce_row=change.row, shadow=shadow,
            salesforce_changed_at=parse_salesforce_datetime(change.row.get("LastModifiedDate")))
    await _write_salesforce(cycle, setup, changes)
    await _write_corral(cycle, setup, changes)
    await _finish(cycle, setup, changes, echoes)


async def _match(cycle: Cycle, setup: ObjectSetup, changes: list[Change]) -> None:
    """Unlinked rows find their Corral record by email (people) or by the Salesforce id property it holds."""
    unlinked = [c for c in changes if c.link is None]
    if not unlinked:
        return
    counts = cycle.counts("INBOUND", setup.name)
    if setup.match_key:
        prop, field_name = setup.match_key
        keyed: dict[str, list[Change]] = {}
        for change in unlinked:
            value = str(change.row.get(field_name) or "").strip().lower()
            if not value:
                change.corral_failed = "no email"
                counts.add("skippedNoEmail")
                continue
            keyed.setdefault(value, []).append(change)
        found = await cycle.records.find(cycle.account_id, setup.type_id, prop, list(keyed))
    else:
        prop = setup.link_property
        keyed = {c.salesforce_id.lower(): [c] for c in unlinked}
        found = await cycle.records.find(cycle.account_id, setup.type_id, prop, [c.salesforce_id for c in unlinked])
    candidates = {value: ids[0] for value, ids in found.items() if ids}
    async with cycle.sessionmaker() as db:
        linked_elsewhere = await link_repo.for_records(db, cycle.account_id, setup.name, list(candidates.values()))
    for value, group in keyed.items():
        record_id = candidates.get(value)
        for position, change in enumerate(group):
            if record_id is None:
                if position > 0:
                    # Two Salesforce records share an email: the first creates the contact, the others wait
                    # for it to exist (next poll) rather than fail on Corral's unique email.
                    change.corral_failed = "duplicate in batch"
                continue
            other = linked_elsewhere.get(record_id)
            if position > 0 or (other is not None and other["salesforce_id"] != change.salesforce_id):
                holder = other["salesforce_id"] if other is not None else group[0].salesforce_id
                change.salesforce_errors = [SalesforceErrorItem(
                    "DUPLICATE_VALUE", f"Corral {setup.name[:-1]} {record_id} holding this "
                                       f"{prop} already syncs with Salesforce {setup.salesforce_object} {holder}")]
                change.corral_failed = "duplicate"
                continue
            change.corral_id = record_id


async def _read_corral(cycle: Cycle, setup: ObjectSetup, changes: list[Change]) -> None:
    ids = sorted({c.link["record_id"] if c.link else c.corral_id for c in changes if not c.corral_failed
                  and (c.link or c.corral_id)})
    records = await cycle.records.read(cycle.account_id, setup.type_id, ids, setup.corral_properties()) if ids else {}
    for change in changes:
        if change.corral_failed:
            continue
        record_id = change.link["record_id"] if change.link else change.corral_id
        if record_id is None:
            continue  # a new record: created below
        record = records.get(record_id)
        if record is None or record.archived or record.merged_into:
            change.corral_failed = "archived"
            cycle.counts("INBOUND", setup.name).add("skippedArchived")
            continue
        change.record = record
        change.corral_id = record_id


async def _write_salesforce(cycle: Cycle, setup: ObjectSetup, changes: list[Change]) -> None:
    """Where Corral wins (its value is newer, or Salesforce is blank under "prefer Salesforce")."""
    updates = [c for c in changes if c.sync and c.sync.to_salesforce and c.record is not None]
    if not updates:
        return
    sobject = {"type": setup.salesforce_object}
    try:
        [results] = await cycle.client.write([RowWrite("update", [
            {"attributes": sobject, "Id": c.salesforce_id, **c.sync.to_salesforce} for c in updates if c.sync])])
    except SalesforceUnavailable as exc:
        for change in updates:
            change.salesforce_errors = [SalesforceErrorItem("SERVER_UNAVAILABLE", str(exc))]
        return
    for change, result in zip(updates, results, strict=True):
        if not result.success:
            change.salesforce_errors = result.errors


async def _write_corral(cycle: Cycle, setup: ObjectSetup, changes: list[Change]) -> None:
    now = format_timestamp(datetime.now(UTC))
    updates: list[dict[str, Any]] = []
    creates: list[dict[str, Any]] = []
    by_ref: dict[int, Change] = {}
    for ref, change in enumerate(changes):
        if change.corral_failed or change.sync is None or change.salesforce_errors:
            continue
        properties: dict[str, Any] = dict(change.sync.to_corral)
        if change.record is None:
            properties[setup.link_property] = change.salesforce_id
            properties[LAST_SYNC_PROPERTY] = now
            creates.append({"ref": ref, "properties": properties})
        else:
            if change.record.properties.get(setup.link_property, "") != change.salesforce_id:
                properties[setup.link_property] = change.salesforce_id
            if properties or change.sync.to_salesforce:
                properties[LAST_SYNC_PROPERTY] = now
            if not properties:
                continue
            updates.append({"ref": ref, "id": str(change.record.id), "properties": properties})
        by_ref[ref] = change
    try:
        results = []
        if updates:
            results += await cycle.records.write(cycle.account_id, setup.type_id, updates, operation="UPDATE",
                                                 id_property="hs_object_id", operation_id=cycle.operation_id)
        if creates:
            # Contacts are upserted by email: a contact created in Corral meanwhile is updated, not duplicated.
            key = setup.match_key[0] if setup.match_key else None
            results += await cycle.records.write(cycle.account_id, setup.type_id, creates,
                                                 operation="UPSERT" if key else "CREATE", id_property=key,
                                                 operation_id=cycle.operation_id)
    except Exception as exc:
        log.warning("records-svc write failed", account_id=cycle.account_id, object_type=setup.name,
                    error=repr(exc))
        for change in by_ref.values():
            change.corral_failed = "unavailable"
        raise
    for result in results:
        change = by_ref[result["ref"]]
        if result.get("id"):
            change.corral_id = int(result["id"])
            change.created = result["status"] == "CREATED"
        refused = {e["property"]: e["message"] for e in result["errors"] if e.get("property")}
        change.corral_refused.update(refused)
        if result["status"] == "ERROR":
            message = "; ".join(e["message"] for e in result["errors"]) or "records-svc refused the record"
            code = result["errors"][0]["code"] if result["errors"] else "INVALID_RECORD"
            change.salesforce_errors = [SalesforceErrorItem(code, message, tuple(refused))]


async def _finish(cycle: Cycle, setup: ObjectSetup, changes: list[Change], echoes: dict[str, datetime]) -> None:
    counts = cycle.counts("INBOUND", setup.name)
    link_writes: list[LinkWrite] = []
    cleared: list[str] = []
    errors: list[ErrorWrite] = []
    events = []
    for change in changes:
        if change.salesforce_errors:
            counts.add("failed")
            error = change.salesforce_errors[0]
            errors.append(ErrorWrite(
                direction=Direction.INBOUND, object_type=setup.name, category=category_of(error.code),
                code=error.code, record_id=change.corral_id, salesforce_id=change.salesforce_id,
                message="; ".join(e.message for e in change.salesforce_errors),
                fields=sorted({f for e in change.salesforce_errors for f in e.fields})))
            continue
        if change.corral_failed or change.sync is None or change.corral_id is None:
            continue
        shadow = {k: v for k, v in change.sync.shadow.items() if k not in change.corral_refused}
        # Our own Salesforce write moves the stamp again; its echo is then recognised by the shadow.
        link_writes.append(LinkWrite(change.corral_id, change.salesforce_id, shadow, change.modstamp))
        counts.add("conflicts", len(change.sync.conflicts))
        if change.corral_refused:
            counts.add("partial")
            errors.append(ErrorWrite(
                direction=Direction.INBOUND, object_type=setup.name, category="PROPERTY_VALUES",
                code="INVALID_PROPERTY_VALUE", record_id=change.corral_id, salesforce_id=change.salesforce_id,
                message="; ".join(f"{p}: {m}" for p, m in change.corral_refused.items()),
                fields=list(change.corral_refused)))
        else:
            cleared.append(change.salesforce_id)
        wrote = bool(change.sync.to_corral or change.sync.to_salesforce or change.created or change.link is None)
        counts.add("created" if change.created else ("linked" if change.link is None else
                                                      ("updated" if wrote else "unchanged")))
        if wrote:
            events.append(synced_event(cycle, setup, record_id=change.corral_id, salesforce_id=change.salesforce_id,
                                       direction=Direction.INBOUND,
                                       operation="CREATED" if change.created else
                                       ("LINKED" if change.link is None else "UPDATED"),
                                       properties=sorted(change.sync.to_corral)))
    async with transaction(cycle.sessionmaker) as db:
        await link_repo.save(db, cycle.account_id, setup.name, setup.salesforce_object, link_writes)
        await link_repo.touch_modstamps(db, cycle.account_id, setup.salesforce_object, echoes)
        await error_repo.clear(db, cycle.account_id, Direction.INBOUND, setup.name, cleared)
        recorded = await error_repo.record(db, cycle.account_id, errors)
        events.extend(error_event(cycle.account_id, row) for row in recorded)
        await add_events(db, events)

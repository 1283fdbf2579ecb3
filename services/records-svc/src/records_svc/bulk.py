"""The set-based bulk upsert that imports (and later sync) write through.

One call carries thousands of rows. Values are validated per column on distinct values; rows are
deduplicated by their key inside the batch; existing records are found with one join; new rows go
through COPY into a staging table and one INSERT .. SELECT; existing ones are merged by one UPDATE
with the same SQL rules as the single-record API. Unique values are claimed set-based, and a race
with a concurrent writer retries the batch instead of failing rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from crm_common.cloudevents import event_dict, now_iso
from crm_common.inputs import as_id
from crm_common.object_types import COMPANY, CONTACT
from crm_common.outbox import add_events
from crm_common.timestamps import now_timestamp
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.catalog import PropertyCatalog
from records_svc.domain.properties import InvalidValue, normalize_value, unique_values_of
from records_svc.service import (
    SOURCE,
    SYSTEM_MANAGED,
    WriteSource,
    journal,
    journal_entry,
    unique_claims,
)

OPERATIONS = frozenset({"CREATE", "UPDATE", "UPSERT"})



@dataclass
class BulkRow:
    ref: int
    properties: dict[str, Any]
    id: str | None = None  # the key value; when absent it is taken from properties[id_property]


@dataclass
class RowError:
    code: str
    message: str
    property: str | None = None
    value: str | None = None


@dataclass
class RowResult:
    ref: int
    id: int | None = None
    status: str = "ERROR"  # CREATED | UPDATED | UNCHANGED | ERROR
    errors: list[RowError] = field(default_factory=list)


@dataclass
class _Unit:
    """All rows of one batch that address the same record."""

    key: str | None
    refs: list[int]
    properties: dict[str, str]
    record_id: int | None = None


class UniqueRace(Exception):
    """A concurrent writer claimed a unique value between our lookup and our insert."""


def _validate_columns(catalog: PropertyCatalog, rows: list[BulkRow], trusted: bool,
                      results: dict[int, RowResult], writer: str | None = None) -> dict[int, dict[str, str]]:
    """Normalise every value, once per distinct (property, value); invalid cells are dropped and reported.

    One pass over the cells with one memo lookup each: an import sends tens of thousands of rows per
    call, and most columns (names, cities, dates, options) repeat their values.
    """
    refused: dict[str, tuple[str, str]] = {}  # property -> (code, message) for a column no row may write
    for name in {name for row in rows for name in row.properties}:
        prop = catalog.properties.get(name)
        if prop is None:
            refused[name] = ("PROPERTY_DEFINITION_NOT_FOUND", f'Property "{name}" does not exist')
        elif (name in SYSTEM_MANAGED or prop.read_only_value) and not trusted:
            refused[name] = ("READ_ONLY_VALUE", f"{name} is read only")
        elif prop.written_by and prop.written_by != writer:
            refused[name] = ("READ_ONLY_VALUE", f"{name} is read only: only {prop.written_by} writes it")
    memos: dict[str, dict[Any, str | InvalidValue]] = {}
    cleaned: dict[int, dict[str, str]] = {}
    for row in rows:
        out: dict[str, str] = {}
        for name, value in row.properties.items():
            memo = memos.get(name)
            if memo is None:
                if name in refused:
                    code, message = refused[name]
                    results[row.ref].errors.append(RowError(code, message, name, _text(value)))
                    continue
                memo = memos[name] = {}
            # Only strings are memoised: True, 1 and 1.0 are one dict key but three different values.
            outcome = memo.get(value) if value.__class__ is str else None
            if outcome is None:
                try:
                    outcome = normalize_value(catalog.properties[name], value)
                except InvalidValue as exc:
                    outcome = exc
                if value.__class__ is str:
                    memo[value] = outcome
            if isinstance(outcome, InvalidValue):
                results[row.ref].errors.append(RowError(_import_error_code(outcome.code), outcome.message,
                                                        name, _text(value)))
            else:
                out[name] = outcome
        cleaned[row.ref] = out
    return cleaned


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# HubSpot's import error names for our validation codes.
_IMPORT_CODES = {
    "INVALID_EMAIL": "INVALID_EMAIL", "INVALID_OPTION": "INVALID_ENUMERATION_OPTION",
    "INVALID_DECIMAL": "COULD_NOT_PARSE_NUMBER", "INVALID_DATE": "COULD_NOT_PARSE_DATE",
    "INVALID_DATETIME": "COULD_NOT_PARSE_DATE", "INVALID_BOOLEAN": "INVALID_BOOLEAN",
    "INVALID_DOMAIN": "INVALID_DOMAIN", "INVALID_STRING_LENGTH": "TOO_LARGE",
}


def _import_error_code(code: str) -> str:
    return _IMPORT_CODES.get(code, code)


async def bulk_upsert(session: AsyncSession, *, account_id: int, catalog: PropertyCatalog, rows: list[BulkRow],
                      operation: str, id_property: str | None, keep_existing: list[str], source_type: str,
                      source_id: str | None, trusted: bool = True,
                      operation_id: str | None = None, writer: str | None = None) -> list[RowResult]:
    """`writer`: the calling service, for the properties only one service may write."""
    results = {row.ref: RowResult(ref=row.ref) for row in rows}
    cleaned = _validate_columns(catalog, rows, trusted, results, writer)
    object_type = catalog.object_type
    namespaces = catalog.unique_namespaces()
    key_namespace = None
    # A company's domain is its import key but not unique (HubSpot lets two companies share one): rows
    # keyed by domain find the oldest company with it, or create it under a lock on the domain.
    by_domain = id_property == "domain" and object_type.id == COMPANY
    if id_property and id_property != "hs_object_id" and not by_domain:
        key_namespace = namespaces.get(id_property)
        if key_namespace is None:
            raise ValueError(f"{id_property} is not a unique property of {object_type.name}")

    # Group rows by key, in file order; a later row's values win over an earlier one's.
    units: dict[str, _Unit] = {}
    keyless: list[_Unit] = []
    for row in rows:
        result = results[row.ref]
        props = cleaned[row.ref]
        key: str | None = None
        if id_property:
            raw_key = row.id if row.id is not None else row.properties.get(id_property)
            if id_property == "hs_object_id":
                key = str(raw_key).strip() if raw_key not in (None, "") else None
                if key is not None and as_id(key) is None:
                    result.errors.append(RowError("INVALID_OBJECT_ID", f"{raw_key} is not a record id",
                                                  "hs_object_id", str(raw_key)))
                    continue
            elif by_domain:
                # An invalid or missing domain leaves the row keyless: it creates a company without one.
                key = props.get("domain") or None
            elif row.id is not None:
                try:
                    key_value = normalize_value(catalog.properties[id_property], row.id)
                except InvalidValue as exc:
                    result.errors.append(RowError(_import_error_code(exc.code), exc.message, id_property, row.id))
                    continue
                key = key_value.lower() or None
                # A record created by its key carries the key (upsert by email creates it with that email).
                if key is not None and not props.get(id_property):
                    props[id_property] = key_value
            else:
                if any(e.property == id_property for e in result.errors):
                    continue  # the key itself was invalid: the row cannot be placed
                key = (props.get(id_property) or "").lower() or None
        if key is None:
            if operation == "UPDATE":
                result.errors.append(RowError("UPDATE_ONLY_IMPORT",
                                              f"No {id_property or 'record id'} to find the record to update",
                                              id_property))
                continue
            keyless.append(_Unit(key=None, refs=[row.ref], properties=props))
            continue
        unit = units.get(key)
        if unit is None:
            units[key] = _Unit(key=key, refs=[row.ref], properties=dict(props))
        else:
            unit.refs.append(row.ref)
            unit.properties.update(props)

    keyed = list(units.values())
    if keyed:
        keys = [u.key for u in keyed if u.key]
        if id_property == "hs_object_id":
            found = await repository.existing_record_ids(session, account_id, object_type.id, [int(k) for k in keys])
            for unit in keyed:
                unit.record_id = int(unit.key) if unit.key and int(unit.key) in found else None
        elif by_domain:
            # Two imports creating the same domain's company at once: the second waits for the first and
            # finds its company. Locks are taken in one order, so concurrent batches cannot deadlock.
            await repository.lock_domains(session, account_id, keys)
            companies = await repository.companies_by_domain(session, account_id, keys)
            for unit in keyed:
                unit.record_id = (companies.get(unit.key or "") or [None])[0]
        elif key_namespace:
            owners = await repository.resolve_unique_values(session, account_id, object_type.id, key_namespace, keys)
            for unit in keyed:
                unit.record_id = owners.get(unit.key or "")
            # An archived owner is found too; such rows cannot be written.
            archived = await repository.archived_record_ids(session, account_id, object_type.id,
                                                            [u.record_id for u in keyed if u.record_id])
            for unit in keyed:
                if unit.record_id in archived:
                    for ref in unit.refs:
                        results[ref].errors.append(RowError(
                            "OBJECT_ARCHIVED", f"The {object_type.singular} with this {id_property} is archived",
                            id_property, unit.key))
                    unit.refs = []
        if object_type.id == CONTACT:
            await _apply_secondary_email_rule(session, account_id, object_type.id, id_property,
                                              [u for u in keyed if u.refs and u.record_id])

    creates: list[_Unit] = []
    updates: list[_Unit] = []
    for unit in [*keyed, *keyless]:
        if not unit.refs:
            continue
        if unit.record_id is None:
            if operation == "UPDATE" or id_property == "hs_object_id":
                for ref in unit.refs:
                    results[ref].errors.append(RowError("UPDATE_ONLY_IMPORT" if operation == "UPDATE"
                                                        else "INVALID_OBJECT_ID",
                                                        f"No {object_type.singular} found for {unit.key}",
                                                        id_property, unit.key))
                continue
            missing = [p for p in object_type.required_properties if not unit.properties.get(p)]
            if missing:
                for ref in unit.refs:
                    results[ref].errors.append(RowError("MISSING_REQUIRED_PROPERTY",
                                                        f"Required properties are missing: {', '.join(missing)}",
                                                        missing[0]))
                continue
            creates.append(unit)
        elif operation == "CREATE":
            for ref in unit.refs:
                results[ref].errors.append(RowError("CREATE_ONLY_IMPORT",
                                                    f"A {object_type.singular} with {id_property} {unit.key} exists "
                                                    f"(ID {unit.record_id}); this import only creates records",
                                                    id_property, unit.key))
        else:
            updates.append(unit)

    # Non-key unique values (additional emails, custom unique properties) owned by another record
    # fail only their unit, before anything is written.
    await _reject_foreign_unique_values(session, account_id, catalog, [*creates, *updates], results, key_namespace)
    creates = [u for u in creates if u.refs]
    updates = [u for u in updates if u.refs]

    changed_at = now_timestamp()
    events: list[dict[str, Any]] = []
    event_time = now_iso()
    source = WriteSource(source_type=source_type, source_id=source_id, operation_id=operation_id, trusted=trusted)
    entries: list[dict[str, Any]] = []
    if creates:
        ids = await _insert_new(session, account_id, object_type.id, creates, changed_at, source_type, source_id,
                                operation_id=operation_id)
        claims = []
        for unit, record_id in zip(creates, ids, strict=True):
            unit.record_id = record_id
            claims.extend(unique_claims(catalog, record_id, unit.properties, namespaces))
        if await repository.claim_unique_values(session, account_id, object_type.id, claims):
            raise UniqueRace()
        for unit in creates:
            for ref in unit.refs:
                results[ref].id = unit.record_id
                results[ref].status = "CREATED"
            events.append(_event("record.created", account_id, catalog, unit.record_id,
                                 {"properties": unit.properties, "sourceType": source_type, "sourceId": source_id},
                                 event_time))
    if updates:
        rows_out = await repository.update_records(
            session, [(u.record_id, u.properties) for u in updates if u.record_id], keep_existing=keep_existing,
            changed_at=changed_at, source_type=source_type, source_id=source_id)
        by_id = {r["id"]: r for r in rows_out}
        release, claim = [], []
        for unit in updates:
            row = by_id.get(unit.record_id or -1)
            if row is None:
                continue
            changes = row["changes"]
            if namespaces and any(p in changes for p in namespaces):
                before = set(unique_claims(catalog, row["id"], row["before"]))
                after = set(unique_claims(catalog, row["id"], row["properties"]))
                release.extend(sorted(before - after))
                claim.extend(sorted(after - before))
            for ref in unit.refs:
                results[ref].id = unit.record_id
                results[ref].status = "UPDATED" if changes else "UNCHANGED"
            if changes:
                entries.append(journal_entry(source, account_id, object_type.id, row["id"], "UPDATE",
                                             old_values={k: row["before"].get(k, "") for k in changes},
                                             new_values=changes))
                events.append(_event("record.updated", account_id, catalog, row["id"],
                                     {"changes": changes, "sourceType": source_type, "sourceId": source_id},
                                     event_time))
        await repository.release_unique_values(session, account_id, object_type.id, release)
        if await repository.claim_unique_values(session, account_id, object_type.id, claim):
            raise UniqueRace()
    await journal(session, source, entries)
    await add_events(session, events)
    return [results[row.ref] for row in rows]


async def _apply_secondary_email_rule(session: AsyncSession, account_id: int, object_type_id: str,
                                      id_property: str | None, units: list[_Unit]) -> None:
    """HubSpot's rule for a contact's secondary (additional) email in an import row.

    Found by its secondary email, the contact is updated but keeps its primary email. Addressed by
    record ID with one of its secondary emails in the email column, that email becomes the primary and
    the old primary takes its place among the additional emails.
    """
    if id_property == "email":
        units = [u for u in units if u.properties.get("email")]
    elif id_property == "hs_object_id":
        units = [u for u in units if u.properties.get("email") and "hs_additional_emails" not in u.properties]
    else:
        return
    if not units:
        return
    stored = await repository.contact_emails(session, account_id, object_type_id, [u.record_id or 0 for u in units])
    for unit in units:
        primary, additional = stored.get(unit.record_id or 0, ("", ""))
        incoming = unit.properties["email"]
        if incoming.lower() == primary.lower():
            continue
        secondaries = [e for e in additional.split(";") if e]
        if incoming.lower() not in {e.lower() for e in secondaries}:
            continue  # a new address: the ordinary update (or key rules) apply
        if id_property == "email":
            del unit.properties["email"]
        else:
            kept = [e for e in secondaries if e.lower() != incoming.lower()]
            unit.properties["hs_additional_emails"] = ";".join([*kept, primary] if primary else kept)


async def _reject_foreign_unique_values(session: AsyncSession, account_id: int, catalog: PropertyCatalog,
                                        units: list[_Unit], results: dict[int, RowResult],
                                        key_namespace: str | None) -> None:
    namespaces = catalog.unique_namespaces()
    wanted: dict[tuple[str, str], list[_Unit]] = {}
    for unit in units:
        for prop_name, namespace in namespaces.items():
            value = unit.properties.get(prop_name)
            if not value:
                continue
            for v in unique_values_of(catalog.properties[prop_name], value):
                if namespace == key_namespace and v.lower() == unit.key:
                    continue
                wanted.setdefault((namespace, v.lower()), []).append(unit)
    if not wanted:
        return
    owners: dict[tuple[str, str], int] = {}
    by_namespace: dict[str, list[str]] = {}
    for namespace, value in wanted:
        by_namespace.setdefault(namespace, []).append(value)
    for namespace, values in by_namespace.items():
        for value, owner in (await repository.resolve_unique_values(session, account_id, catalog.object_type.id,
                                                                     namespace, values)).items():
            owners[(namespace, value)] = owner
    for (namespace, value), claimants in wanted.items():
        owner = owners.get((namespace, value))
        # Two units of this batch claiming one value: the first keeps it.
        rivals = claimants if owner is not None else claimants[1:]
        for unit in rivals:
            if owner is not None and unit.record_id == owner:
                continue
            for ref in unit.refs:
                results[ref].errors.append(RowError(
                    "DUPLICATE_UNIQUE_PROPERTY_VALUE",
                    f"{namespace} {value} already belongs to {catalog.object_type.singular} "
                    f"{owner if owner is not None else 'another row of this import'}", namespace, value))
            unit.refs = []


async def _insert_new(session: AsyncSession, account_id: int, object_type_id: str, units: list[_Unit],
                      changed_at: str, source_type: str, source_id: str | None, *,
                      operation_id: str | None) -> list[int]:
    """Insert the new records (with their journal entries when the write is an operation); returns their ids."""
    # Every value of a new record has one version, its creation: stored once per record, not per value
    # (corral_full_history expands it for readers; migration 0006).
    created_source = {"timestamp": changed_at, "sourceType": source_type}
    if source_id is not None:
        created_source["sourceId"] = source_id
    return await repository.insert_new_records(session, account_id, object_type_id,
                                               [orjson.dumps(unit.properties).decode() for unit in units],
                                               created_source=created_source, operation_id=operation_id)


def _event(event_type: str, account_id: int, catalog: PropertyCatalog, record_id: int | None,
           data: dict[str, Any], time: str) -> dict[str, Any]:
    object_type = catalog.object_type
    # A plain dict, not a model: an import builds one per row.
    return event_dict(source=SOURCE, type=event_type, account_id=account_id, time=time,
                      subject=f"{object_type.id}/{record_id}",
                      data={"objectTypeId": object_type.id, "objectType": object_type.name, "id": str(record_id),
                            **data})

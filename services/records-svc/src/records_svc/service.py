"""Records use-cases: validate, write with the SQL rules, queue events. Never commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from crm_common.cloudevents import CloudEvent
from crm_common.errors import HubSpotError
from crm_common.inputs import abridged, as_id, parse_id
from crm_common.outbox import add_event, add_events
from crm_common.timestamps import now_timestamp, timestamp_or_none
from sqlalchemy.ext.asyncio import AsyncSession

from records_svc import repository
from records_svc.catalog import PropertyCatalog, catalog_knowing, load_catalog
from records_svc.domain.associations import DEFAULT_TYPES, HUBSPOT_DEFINED, association_key, inverse_of
from records_svc.domain.object_types import ObjectType
from records_svc.domain.properties import InvalidValue, normalize_value, unique_values_of

SOURCE = "records-svc"
# Properties callers may never write; the system maintains them.
SYSTEM_MANAGED = frozenset({
    "hs_object_id", "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids", "hs_object_source",
    "hs_object_source_id", "hs_object_source_label", "hs_created_by_user_id", "hs_unique_creation_key",
})


@dataclass
class WriteSource:
    """Who is writing: the history's sourceType/sourceId and the journal's operation id."""

    source_type: str = "API"
    source_id: str | None = None
    # Groups the journal entries of one request, import, merge or sync run (undo works per operation).
    operation_id: str | None = None
    # Internal callers (imports, merges, sync) may set what public API callers may not.
    trusted: bool = False


@dataclass
class PropertyProblem:
    name: str
    code: str
    message: str


@dataclass
class ValidatedProperties:
    values: dict[str, str] = field(default_factory=dict)
    problems: list[PropertyProblem] = field(default_factory=list)
    created_at: datetime | None = None


def property_error(problems: list[PropertyProblem]) -> HubSpotError:
    detail = [{"isValid": False, "message": p.message, "error": p.code, "name": p.name,
               "localizedErrorMessage": p.message} for p in problems]
    return HubSpotError(
        400,
        "Property values were not valid: " + orjson.dumps(detail).decode(),
        category="VALIDATION_ERROR",
        errors=[{"message": p.message, "code": p.code, "context": {"propertyName": [p.name]}} for p in problems],
    )


def validate_properties(catalog: PropertyCatalog, raw: dict[str, Any], *, creating: bool,
                        source: WriteSource) -> ValidatedProperties:
    result = ValidatedProperties()
    if not isinstance(raw, dict):
        result.problems.append(PropertyProblem("properties", "INVALID_INPUT", "properties must be an object"))
        return result
    for name, value in raw.items():
        prop = catalog.properties.get(name)
        if prop is None:
            result.problems.append(PropertyProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            continue
        if name == "createdate":
            if not creating and not source.trusted:
                result.problems.append(PropertyProblem(name, "READ_ONLY_VALUE",
                                                       f"{name} can only be set when the record is created"))
                continue
            try:
                text = normalize_value(prop, value)
            except InvalidValue as exc:
                result.problems.append(PropertyProblem(name, exc.code, exc.message))
                continue
            if text:
                result.created_at = datetime.fromisoformat(text.replace("Z", "+00:00"))
            continue
        if (name in SYSTEM_MANAGED or prop.read_only_value or prop.calculated) and not source.trusted:
            result.problems.append(PropertyProblem(name, "READ_ONLY_VALUE", f"{name} is a read only property; "
                                                   "its value cannot be set"))
            continue
        try:
            result.values[name] = normalize_value(prop, value)
        except InvalidValue as exc:
            result.problems.append(PropertyProblem(name, exc.code, exc.message))
    if creating:
        missing = [p for p in catalog.object_type.required_properties if not result.values.get(p)]
        for name in missing:
            result.problems.append(PropertyProblem(name, "REQUIRED_PROPERTY",
                                                   f"{name} is required to create a {catalog.object_type.singular}"))
        # New records never store clears.
        result.values = {k: v for k, v in result.values.items() if v != ""}
    return result


# --- representation -------------------------------------------------------------------------------------


def to_public(row: dict[str, Any], object_type: ObjectType, *, requested: list[str] | None,
              with_history: list[str] | None = None) -> dict[str, Any]:
    stored: dict[str, str] = row["properties"]
    system = {
        "hs_object_id": str(row["id"]),
        "createdate": timestamp_or_none(row["created_at"]),
        object_type.last_modified_property: timestamp_or_none(row["updated_at"]),
    }
    names = list(requested) if requested else list(object_type.default_properties)
    properties: dict[str, str | None] = {}
    for name in names:
        if name in system:
            continue
        properties[name] = stored.get(name)
    properties.update(system)
    body: dict[str, Any] = {
        "id": str(row["id"]),
        "properties": properties,
        "createdAt": timestamp_or_none(row["created_at"]),
        "updatedAt": timestamp_or_none(row["updated_at"]),
        "archived": bool(row["archived"]),
    }
    if row.get("archived_at"):
        body["archivedAt"] = timestamp_or_none(row["archived_at"])
    if with_history:
        history = row.get("history") or {}
        body["propertiesWithHistory"] = {name: history.get(name, []) for name in with_history}
    return body


def record_event(event_type: str, account_id: int, object_type: ObjectType, record_id: int,
                 data: dict[str, Any] | None = None) -> CloudEvent:
    return CloudEvent(
        source=SOURCE, type=event_type, subject=f"{object_type.id}/{record_id}", corralaccount=account_id,
        data={"objectTypeId": object_type.id, "objectType": object_type.name, "id": str(record_id), **(data or {})},
    )


# --- journal --------------------------------------------------------------------------------------------


def journal_entry(source: WriteSource, account_id: int, object_type_id: str, record_id: int, kind: str, *,
                  old_values: dict[str, str] | None = None, new_values: dict[str, str] | None = None,
                  association: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"operation_id": source.operation_id, "account_id": account_id, "object_type_id": object_type_id,
            "record_id": record_id, "kind": kind, "old_values": old_values, "new_values": new_values,
            "association": association}


async def journal(session: AsyncSession, source: WriteSource, entries: list[dict[str, Any]]) -> None:
    if source.operation_id and entries:
        await repository.journal_records(session, entries)


def association_journal(source: WriteSource, account_id: int,
                        rows: list[tuple[str, int, str, int, str, int]], kind: str) -> list[dict[str, Any]]:
    return [journal_entry(source, account_id, ft, fi, kind,
                          association={"fromObjectTypeId": ft, "fromId": fi, "toObjectTypeId": tt, "toId": ti,
                                       "category": c, "typeId": ty})
            for ft, fi, tt, ti, c, ty in rows]


# --- unique values --------------------------------------------------------------------------------------


def unique_claims(catalog: PropertyCatalog, record_id: int, values: dict[str, str],
                  namespaces: dict[str, str] | None = None) -> list[tuple[str, str, int]]:
    claims = []
    for prop_name, namespace in (namespaces if namespaces is not None else catalog.unique_namespaces()).items():
        value = values.get(prop_name)
        if value:
            for v in unique_values_of(catalog.properties[prop_name], value):
                claims.append((namespace, v.lower(), record_id))
    return claims


def conflict_error(catalog: PropertyCatalog, conflicts: list[tuple[str, str, int]]) -> HubSpotError:
    namespace, value, owner = conflicts[0]
    if catalog.object_type.id == "0-1" and namespace == "email":
        message = f"Contact already exists. Existing ID: {owner}"
    else:
        message = (f"A {catalog.object_type.singular} with {namespace} '{value}' already exists. "
                   f"Existing ID: {owner}")
    return HubSpotError(409, message, category="CONFLICT",
                        errors=[{"message": message, "code": "DUPLICATE_UNIQUE_PROPERTY_VALUE",
                                 "context": {"propertyName": [namespace], "existingId": [str(owner)]}}])


# --- single-record use cases ----------------------------------------------------------------------------


async def create_record(session: AsyncSession, *, account_id: int, object_type: ObjectType,
                        properties: dict[str, Any], associations: list[dict[str, Any]] | None = None,
                        source: WriteSource) -> dict[str, Any]:
    catalog = await catalog_knowing(session, account_id, object_type, properties)
    validated = validate_properties(catalog, properties, creating=True, source=source)
    if validated.problems:
        raise property_error(validated.problems)
    associations_to_add = await _check_create_associations(session, account_id, object_type, associations or [])
    [row] = await repository.insert_records(
        session, account_id, object_type.id, [(validated.values, validated.created_at)],
        changed_at=now_timestamp(), source_type=source.source_type, source_id=source.source_id)
    conflicts = await repository.claim_unique_values(
        session, account_id, object_type.id, unique_claims(catalog, row["id"], validated.values))
    if conflicts:
        raise conflict_error(catalog, conflicts)
    await journal(session, source, [journal_entry(source, account_id, object_type.id, row["id"], "CREATE",
                                                  new_values=validated.values)])
    if associations_to_add:
        await _add_associations(session, account_id, object_type, row["id"], associations_to_add, source)
    await add_event(session, record_event("record.created", account_id, object_type, row["id"],
                                          {"properties": validated.values, "sourceType": source.source_type}))
    return row


async def _check_create_associations(session: AsyncSession, account_id: int, object_type: ObjectType,
                                     associations: list[dict[str, Any]]) -> list[tuple[str, int, str, int]]:
    """Validate `associations` of a create body: each target exists and each type id fits the pair."""
    from records_svc.domain.associations import PRIMARY_TYPES

    wanted: list[tuple[str, int, str, int]] = []
    for index, item in enumerate(associations):
        to_id = parse_id((item.get("to") or {}).get("id", ""), field=f"associations[{index}].to.id",
                         what="record id")
        for spec in item.get("types") or []:
            type_id = spec.get("associationTypeId")
            category = spec.get("associationCategory", HUBSPOT_DEFINED)
            target = None
            for (f, t), assoc in [*DEFAULT_TYPES.items(), *PRIMARY_TYPES.items()]:
                if f == object_type.id and assoc.type_id == type_id and category == HUBSPOT_DEFINED:
                    target = t
                    break
            if target is None:
                raise HubSpotError(400, f"associations[{index}]: association type {type_id} ({category}) is not "
                                        f"valid from {object_type.name}")
            wanted.append((category, int(type_id), target, to_id))
    if not wanted:
        return []
    by_type: dict[str, list[int]] = {}
    for _, _, t, i in wanted:
        by_type.setdefault(t, []).append(i)
    for type_id, ids in by_type.items():
        found = await repository.existing_record_ids(session, account_id, type_id, ids)
        missing = sorted(set(ids) - found)
        if missing:
            raise HubSpotError(400, f"Cannot associate: no {type_id} record with id {missing[0]}",
                               category="VALIDATION_ERROR")
    return [(t, i, c, ty) for c, ty, t, i in wanted]


async def _add_associations(session: AsyncSession, account_id: int, object_type: ObjectType, record_id: int,
                            targets: list[tuple[str, int, str, int]], source: WriteSource) -> None:
    rows = []
    for to_type, to_id, category, type_id in targets:
        rows.append((object_type.id, record_id, to_type, to_id, category, type_id))
        inverse = inverse_of(object_type.id, to_type, type_id)
        if inverse is not None:
            rows.append((to_type, to_id, object_type.id, record_id, category, inverse))
        # A labeled (primary) association also carries the unlabeled default, as in HubSpot.
        default = DEFAULT_TYPES.get((object_type.id, to_type))
        if default and default.type_id != type_id:
            rows.append((object_type.id, record_id, to_type, to_id, HUBSPOT_DEFINED, default.type_id))
            rows.append((to_type, to_id, object_type.id, record_id, HUBSPOT_DEFINED, default.inverse_type_id))
    added = await repository.insert_associations(session, account_id, rows)
    await journal(session, source, association_journal(source, account_id, added, "ASSOCIATE"))
    await add_events(session, [
        CloudEvent(source=SOURCE, type="association.created", subject=f"{object_type.id}/{record_id}",
                   corralaccount=account_id,
                   data={"fromObjectTypeId": object_type.id, "fromObjectId": str(record_id),
                         "toObjectTypeId": to_type, "toObjectId": str(to_id),
                         "associationCategory": category, "associationTypeId": type_id})
        for to_type, to_id, category, type_id in targets
    ])


async def resolve_id(session: AsyncSession, *, account_id: int, catalog: PropertyCatalog, record_id: str,
                     id_property: str | None) -> int | None:
    """The record id behind an id of a request: the id itself, or a unique property's value."""
    if not id_property or id_property == "hs_object_id":
        return as_id(record_id)
    namespace = catalog.unique_namespaces().get(id_property)
    if namespace is None:
        raise HubSpotError(400, f"{id_property} is not a unique property of {catalog.object_type.name}; "
                                "idProperty must name a property with unique values",
                           errors=[{"message": f"{id_property} is not unique", "code": "INVALID_ID_PROPERTY",
                                    "context": {"propertyName": [id_property]}}])
    try:
        value = normalize_value(catalog.properties[id_property], record_id)
    except InvalidValue:
        return None
    found = await repository.resolve_unique_values(session, account_id, catalog.object_type.id, namespace,
                                                   [value.lower()])
    return found.get(value.lower())


def not_found(object_type: ObjectType, record_id: str) -> HubSpotError:
    return HubSpotError(404, f"No {object_type.singular} with id {abridged(record_id)} was found",
                        category="OBJECT_NOT_FOUND")


async def get_record(session: AsyncSession, *, account_id: int, object_type: ObjectType, record_id: str,
                     id_property: str | None, archived: bool, with_history: bool) -> dict[str, Any]:
    catalog = await load_catalog(session, account_id, object_type)
    if not id_property:
        parse_id(record_id, field="objectId", what=f"{object_type.singular} id")
    resolved = await resolve_id(session, account_id=account_id, catalog=catalog, record_id=record_id,
                                id_property=id_property)
    if resolved is None:
        raise not_found(object_type, record_id)
    rows = await repository.fetch_records(session, account_id, object_type.id, [resolved], archived=archived,
                                          with_history=with_history)
    if resolved not in rows and not id_property:
        # An id absorbed by a merge keeps resolving to the surviving record on single reads.
        survivor = await repository.resolve_alias(session, account_id, object_type.id, resolved)
        if survivor is not None:
            resolved = survivor
            rows = await repository.fetch_records(session, account_id, object_type.id, [resolved],
                                                  archived=archived, with_history=with_history)
    if resolved not in rows:
        raise not_found(object_type, record_id)
    return rows[resolved]


async def update_record(session: AsyncSession, *, account_id: int, object_type: ObjectType, record_id: str,
                        id_property: str | None, properties: dict[str, Any], source: WriteSource,
                        keep_existing: list[str] | None = None) -> dict[str, Any]:
    catalog = await catalog_knowing(session, account_id, object_type, properties)
    validated = validate_properties(catalog, properties, creating=False, source=source)
    if validated.problems:
        raise property_error(validated.problems)
    if not id_property:
        parse_id(record_id, field="objectId", what=f"{object_type.singular} id")
    resolved = await resolve_id(session, account_id=account_id, catalog=catalog, record_id=record_id,
                                id_property=id_property)
    if resolved is None:
        raise not_found(object_type, record_id)
    if not id_property and not await repository.existing_record_ids(session, account_id, object_type.id, [resolved]):
        resolved = await repository.resolve_alias(session, account_id, object_type.id, resolved) or resolved
    results = await apply_updates(session, account_id=account_id, catalog=catalog,
                                  updates=[(resolved, validated.values)], source=source,
                                  keep_existing=keep_existing or [])
    if resolved not in results:
        raise not_found(object_type, record_id)
    outcome = results[resolved]
    if isinstance(outcome, HubSpotError):
        raise outcome
    return outcome


async def apply_updates(session: AsyncSession, *, account_id: int, catalog: PropertyCatalog,
                        updates: list[tuple[int, dict[str, str]]], source: WriteSource,
                        keep_existing: list[str]) -> dict[int, dict[str, Any] | HubSpotError]:
    """Update existing, unarchived records; unique-value conflicts fail only the record that has them."""
    object_type = catalog.object_type
    ids = [i for i, _ in updates]
    locked = await repository.fetch_records(session, account_id, object_type.id, ids, archived=False,
                                            for_update=True)
    present = [(i, p) for i, p in updates if i in locked]
    rows = await repository.update_records(session, present, keep_existing=keep_existing, changed_at=now_timestamp(),
                                           source_type=source.source_type, source_id=source.source_id)
    outcomes: dict[int, dict[str, Any] | HubSpotError] = {}
    events = []
    journal_entries: list[dict[str, Any]] = []
    namespaces = catalog.unique_namespaces()
    for row in rows:
        changes: dict[str, str] = row["changes"]
        if namespaces and any(p in changes for p in namespaces):
            before_claims = set(unique_claims(catalog, row["id"], row["before"]))
            after_claims = set(unique_claims(catalog, row["id"], row["properties"]))
            await repository.release_unique_values(session, account_id, object_type.id,
                                                   sorted(before_claims - after_claims))
            conflicts = await repository.claim_unique_values(session, account_id, object_type.id,
                                                             sorted(after_claims - before_claims))
            if conflicts:
                # The whole request fails: a conflicting write must not half-apply.
                raise conflict_error(catalog, conflicts)
        outcomes[row["id"]] = row
        if changes:
            journal_entries.append(journal_entry(
                source, account_id, object_type.id, row["id"], "UPDATE",
                old_values={k: row["before"].get(k, "") for k in changes}, new_values=changes))
            events.append(record_event("record.updated", account_id, object_type, row["id"],
                                       {"changes": changes, "sourceType": source.source_type}))
    await journal(session, source, journal_entries)
    if len(events) == 1:
        await add_event(session, events[0])
    elif events:
        await add_events(session, events)
    return outcomes


async def archive_records(session: AsyncSession, *, account_id: int, object_type: ObjectType,
                          ids: list[int], source: WriteSource | None = None) -> list[int]:
    archived = await repository.set_archived(session, account_id, object_type.id, ids, True)
    if source:
        await journal(session, source, [journal_entry(source, account_id, object_type.id, i, "ARCHIVE")
                                        for i in archived])
    events = [record_event("record.archived", account_id, object_type, i) for i in archived]
    if len(events) == 1:
        await add_event(session, events[0])
    elif events:
        await add_events(session, events)
    return archived


async def restore_records(session: AsyncSession, *, account_id: int, object_type: ObjectType,
                          ids: list[int], source: WriteSource | None = None) -> list[int]:
    restored = await repository.set_archived(session, account_id, object_type.id, ids, False)
    if source:
        await journal(session, source, [journal_entry(source, account_id, object_type.id, i, "RESTORE")
                                        for i in restored])
    for i in restored:
        await add_event(session, record_event("record.restored", account_id, object_type, i))
    return restored


async def association_map(session: AsyncSession, *, account_id: int, object_type: ObjectType,
                          record_ids: list[int], to_types: list[ObjectType]) -> dict[int, dict[str, Any]]:
    """`associations` of GET responses: {plural name: {results: [{id, type}]}} per record."""
    if not to_types or not record_ids:
        return {}
    rows = await repository.associations_of(session, account_id, record_ids, [t.id for t in to_types])
    names = {t.id: t.name for t in to_types}
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        bucket = out.setdefault(row["from_id"], {}).setdefault(names[row["to_object_type_id"]], {"results": []})
        bucket["results"].append({
            "id": str(row["to_id"]),
            "type": association_key(object_type.id, row["to_object_type_id"], row["type_id"]),
        })
    return out




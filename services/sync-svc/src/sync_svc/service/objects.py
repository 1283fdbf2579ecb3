"""Objects and field mappings use cases: which Corral objects sync with which Salesforce objects, and how.

Every mapping is checked against the org's describe (cached, refreshed with If-Modified-Since) and
records-svc's property definitions; refusals say what is wrong with both sides named.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crm_common.errors import HubSpotError
from sqlalchemy.ext.asyncio import AsyncSession

from sync_svc.connector import Connector
from sync_svc.domain import mappings as rules
from sync_svc.domain.objects import SYNC_OBJECT_TYPES, SyncObjectType, sync_object_type
from sync_svc.domain.rules import SyncRule
from sync_svc.repositories import links as link_repo
from sync_svc.repositories import mappings as mapping_repo
from sync_svc.salesforce.client import SalesforceClient
from sync_svc.salesforce.errors import SalesforceApiError, SalesforceError
from sync_svc.service.connection import client_for, unreachable

# A describe younger than this is used as it is; older, Salesforce is asked whether it changed (304).
DESCRIBE_FRESH = timedelta(minutes=5)


class PropertySource(Protocol):
    async def properties(self, account_id: int, object_type: str) -> dict[str, dict[str, Any]]: ...


def object_type_or_404(name: str) -> SyncObjectType:
    found = sync_object_type(name)
    if found is None:
        known = ", ".join(SYNC_OBJECT_TYPES)
        raise HubSpotError(404, f"{name!r} is not an object that syncs with Salesforce (standard objects: {known}; "
                                "custom objects are not supported yet)", category="OBJECT_NOT_FOUND")
    return found


async def describe_fields(*, account_id: int, salesforce_object: str, session: AsyncSession,
                          client: SalesforceClient, check: bool = False) -> dict[str, dict[str, Any]]:
    """Field name -> describe entry, from the cache when it is fresh or Salesforce says it has not changed;
    `check` asks Salesforce whatever the cache's age (a field just added in Salesforce)."""
    cached = await mapping_repo.describe(session, account_id, salesforce_object)
    document = cached["document"] if cached else None
    if cached is None or check or datetime.now(UTC) - cached["fetched_at"] > DESCRIBE_FRESH:
        try:
            # HTTP dates have whole seconds: a change in the second of the last fetch must not look older.
            fresh = await client.describe(salesforce_object, if_modified_since=cached["fetched_at"] - timedelta(
                seconds=1) if cached else None)
        except SalesforceApiError as exc:
            if exc.status == 404:
                raise HubSpotError(400, f"The connected org has no {salesforce_object} object (or the integration "
                                        "user cannot see it)") from None
            raise unreachable(exc) from None
        except SalesforceError as exc:
            raise unreachable(exc) from None
        await mapping_repo.save_describe(session, account_id, salesforce_object, fresh)
        document = fresh or document
    return {str(f["name"]): f for f in (document or {}).get("fields", [])}


def _field(fields: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Salesforce field names are case-insensitive."""
    return fields.get(name) or next((f for key, f in fields.items() if key.lower() == name.lower()), None)


def mapping_out(row: dict[str, Any], *, prop: dict[str, Any] | None, field: dict[str, Any] | None) -> dict[str, Any]:
    rule = SyncRule(row["sync_rule"])
    return {"id": str(row["id"]), "property": row["property"], "salesforceField": row["salesforce_field"],
            "syncRule": rule.value, "standard": row["standard"],
            "warnings": rules.mapping_warnings(salesforce_object=row["salesforce_object"], prop=prop, field=field,
                                               rule=rule)}


def _existing(rows: list[dict[str, Any]]) -> list[rules.ExistingMapping]:
    return [rules.ExistingMapping(r["id"], r["property"], r["salesforce_field"], SyncRule(r["sync_rule"]))
            for r in rows]


def _mapping_row(account_id: int, object_type: SyncObjectType, salesforce_object: str, prop: dict[str, Any],
                 field: dict[str, Any], rule: SyncRule, standard: bool) -> dict[str, Any]:
    return {"account_id": account_id, "object_type": object_type.name, "salesforce_object": salesforce_object,
            "property": prop["name"], "salesforce_field": field["name"], "sync_rule": rule.value,
            "standard": standard, "property_type": prop["type"], "property_field_type": prop["fieldType"],
            "salesforce_type": field["type"]}


def _refused(exc: rules.MappingRefused) -> HubSpotError:
    return HubSpotError(exc.status, exc.message, errors=[{"message": exc.message, "code": exc.code}])


async def _context(*, account_id: int, object_type: SyncObjectType, session: AsyncSession, connector: Connector,
                   records: PropertySource, salesforce_object: str | None = None, needs_field: str | None = None,
                   ) -> tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The object's Salesforce object, its fields (describe) and the Corral properties; `needs_field` missing
    from a cached describe makes Salesforce be asked again (it may have been added since)."""
    if salesforce_object is None:
        saved = await mapping_repo.get_object(session, account_id, object_type.name)
        if saved is None:
            raise HubSpotError(409, f"{object_type.name} do not sync yet: PUT /corral/v1/salesforce/objects/"
                                    f"{object_type.name} first", sub_category="OBJECT_NOT_SET_UP")
        salesforce_object = saved["salesforce_object"]
    _, client = await client_for(account_id=account_id, session=session, connector=connector)
    fields = await describe_fields(account_id=account_id, salesforce_object=salesforce_object, session=session,
                                   client=client)
    if needs_field and _field(fields, needs_field) is None:
        fields = await describe_fields(account_id=account_id, salesforce_object=salesforce_object, session=session,
                                       client=client, check=True)
    properties = await records.properties(account_id, object_type.object_type_id)
    return salesforce_object, fields, properties


async def list_objects(*, account_id: int, session: AsyncSession) -> list[dict[str, Any]]:
    saved = {row["object_type"]: row for row in await mapping_repo.objects(session, account_id)}
    out = []
    for name, object_type in SYNC_OBJECT_TYPES.items():
        row = saved.get(name)
        out.append({"objectType": name, "objectTypeId": object_type.object_type_id,
                    "salesforceObject": row["salesforce_object"] if row else object_type.salesforce_objects[0],
                    "salesforceObjects": list(object_type.salesforce_objects),
                    "enabled": bool(row and row["enabled"])})
    return out


async def set_object(*, account_id: int, object_type_name: str, salesforce_object: str, enabled: bool,
                     session: AsyncSession, connector: Connector, records: PropertySource) -> dict[str, Any]:
    object_type = object_type_or_404(object_type_name)
    match = next((s for s in object_type.salesforce_objects if s.lower() == salesforce_object.lower()), None)
    if match is None:
        allowed = " or ".join(object_type.salesforce_objects)
        raise HubSpotError(400, f"{object_type.name} sync with {allowed}, not {salesforce_object!r}",
                           errors=[{"message": f"salesforceObject must be {allowed}", "code": "INVALID_OBJECT",
                                    "in": "salesforceObject"}])
    previous = await mapping_repo.get_object(session, account_id, object_type.name, for_update=True)
    if previous and previous["salesforce_object"] != match:
        linked = (await link_repo.counts_by_object(session, account_id)).get(object_type.name, 0)
        if linked:
            raise HubSpotError(409, f"{linked} {object_type.name} are linked to Salesforce "
                                    f"{previous['salesforce_object']} records; switching to {match} would orphan them. "
                                    "Disconnect with forgetLinks=true to start over", sub_category="OBJECT_LINKED")
    _, fields, properties = await _context(account_id=account_id, object_type=object_type, session=session,
                                           connector=connector, records=records, salesforce_object=match)
    row = await mapping_repo.save_object(session, account_id=account_id, object_type=object_type.name,
                                         salesforce_object=match, enabled=enabled)
    existing = await mapping_repo.mappings(session, account_id, object_type.name, match)
    if enabled and not existing:
        await _create_standard_mappings(account_id=account_id, object_type=object_type, salesforce_object=match,
                                        fields=fields, properties=properties, session=session)
    mapping_rows = await mapping_repo.mappings(session, account_id, object_type.name, match)
    return {"objectType": object_type.name, "objectTypeId": object_type.object_type_id, "salesforceObject": match,
            "enabled": row["enabled"], "mappings": len(mapping_rows),
            "warnings": rules.object_warnings(salesforce_object=match, fields=fields.values(),
                                              mapped=_written_fields(mapping_rows))}


def _written_fields(rows: list[dict[str, Any]]) -> dict[str, SyncRule]:
    """Fields some mapping writes to Salesforce (what a create can fill)."""
    return {r["salesforce_field"]: SyncRule(r["sync_rule"]) for r in rows
            if SyncRule(r["sync_rule"]).writes_salesforce}


async def _create_standard_mappings(*, account_id: int, object_type: SyncObjectType, salesforce_object: str,
                                    fields: dict[str, dict[str, Any]], properties: dict[str, dict[str, Any]],
                                    session: AsyncSession) -> None:
    """HubSpot's default mappings; one whose field this org lacks (or cannot take) is left out."""
    rows: list[dict[str, Any]] = []
    made: list[rules.ExistingMapping] = []
    for standard in object_type.standard[salesforce_object]:
        prop = properties.get(standard.property)
        field = _field(fields, standard.salesforce_field)
        try:
            rules.check_mapping(object_label=object_type.name, salesforce_object=salesforce_object, prop=prop,
                                property_name=standard.property, field=field, field_name=standard.salesforce_field,
                                rule=standard.rule, existing=made)
        except rules.MappingRefused:
            continue
        assert prop is not None and field is not None
        rows.append(_mapping_row(account_id, object_type, salesforce_object, prop, field, standard.rule, True))
        made.append(rules.ExistingMapping(-len(made) - 1, prop["name"], field["name"], standard.rule))
    await mapping_repo.insert_mappings(session, rows)


async def list_mappings(*, account_id: int, object_type_name: str, session: AsyncSession, connector: Connector,
                        records: PropertySource) -> dict[str, Any]:
    object_type = object_type_or_404(object_type_name)
    salesforce_object, fields, properties = await _context(account_id=account_id, object_type=object_type,
                                                           session=session, connector=connector, records=records)
    rows = await mapping_repo.mappings(session, account_id, object_type.name, salesforce_object)
    return {"objectType": object_type.name, "salesforceObject": salesforce_object,
            "results": [mapping_out(r, prop=properties.get(r["property"]), field=_field(fields, r["salesforce_field"]))
                        for r in rows],
            "warnings": rules.object_warnings(salesforce_object=salesforce_object, fields=fields.values(),
                                              mapped=_written_fields(rows))}


def parse_rule(value: str) -> SyncRule:
    try:
        return SyncRule(value)
    except ValueError:
        allowed = ", ".join(r.value for r in SyncRule)
        raise HubSpotError(400, f"syncRule must be one of {allowed}; got {value!r}",
                           errors=[{"message": "invalid syncRule", "code": "INVALID_SYNC_RULE", "in": "syncRule"}]
                           ) from None


async def create_mapping(*, account_id: int, object_type_name: str, property_name: str, field_name: str,
                         rule: SyncRule, session: AsyncSession, connector: Connector,
                         records: PropertySource) -> dict[str, Any]:
    object_type = object_type_or_404(object_type_name)
    salesforce_object, fields, properties = await _context(account_id=account_id, object_type=object_type,
                                                           session=session, connector=connector, records=records,
                                                           needs_field=field_name)
    existing = await mapping_repo.mappings(session, account_id, object_type.name, salesforce_object)
    prop, field = properties.get(property_name), _field(fields, field_name)
    try:
        rules.check_mapping(object_label=object_type.name, salesforce_object=salesforce_object, prop=prop,
                            property_name=property_name, field=field, field_name=field_name, rule=rule,
                            existing=_existing(existing))
    except rules.MappingRefused as exc:
        raise _refused(exc) from None
    assert prop is not None and field is not None
    row = await mapping_repo.insert_mapping(session, _mapping_row(account_id, object_type, salesforce_object, prop,
                                                                  field, rule, False))
    if row is None:  # a concurrent request mapped the same property or field first
        raise HubSpotError(409, f"{property_name} or {salesforce_object}.{field_name} was just mapped by another "
                                "request", sub_category="ALREADY_MAPPED")
    return mapping_out(row, prop=prop, field=field)


async def _mapping_or_404(session: AsyncSession, account_id: int, object_type: SyncObjectType,
                          mapping_id: str) -> dict[str, Any]:
    row = await mapping_repo.get_mapping(session, account_id, object_type.name, int(mapping_id)) \
        if mapping_id.isdigit() and len(mapping_id) < 19 else None
    if row is None:
        raise HubSpotError(404, f"No {object_type.name} field mapping with id {mapping_id}", category="OBJECT_NOT_FOUND")
    return row


async def update_mapping(*, account_id: int, object_type_name: str, mapping_id: str, property_name: str | None,
                         field_name: str | None, rule: SyncRule | None, session: AsyncSession, connector: Connector,
                         records: PropertySource) -> dict[str, Any]:
    object_type = object_type_or_404(object_type_name)
    row = await _mapping_or_404(session, account_id, object_type, mapping_id)
    salesforce_object, fields, properties = await _context(
        account_id=account_id, object_type=object_type, session=session, connector=connector, records=records,
        salesforce_object=row["salesforce_object"], needs_field=field_name)
    if row["standard"] and ((property_name and property_name != row["property"])
                            or (field_name and field_name.lower() != row["salesforce_field"].lower())):
        raise HubSpotError(400, f"Mapping {mapping_id} is a standard mapping ({row['property']} to "
                                f"{row['salesforce_field']}): only its sync rule can change")
    new_property = property_name or row["property"]
    new_field = field_name or row["salesforce_field"]
    new_rule = rule or SyncRule(row["sync_rule"])
    prop, field = properties.get(new_property), _field(fields, new_field)
    existing = await mapping_repo.mappings(session, account_id, object_type.name, salesforce_object)
    try:
        rules.check_mapping(object_label=object_type.name, salesforce_object=salesforce_object, prop=prop,
                            property_name=new_property, field=field, field_name=new_field, rule=new_rule,
                            existing=_existing(existing), replacing=row["id"])
    except rules.MappingRefused as exc:
        raise _refused(exc) from None
    assert prop is not None and field is not None
    updated = await mapping_repo.update_mapping(session, row["id"], {
        "property": prop["name"], "salesforce_field": field["name"], "sync_rule": new_rule.value,
        "property_type": prop["type"], "property_field_type": prop["fieldType"], "salesforce_type": field["type"]})
    return mapping_out(updated, prop=prop, field=field)


async def delete_mapping(*, account_id: int, object_type_name: str, mapping_id: str, session: AsyncSession) -> None:
    object_type = object_type_or_404(object_type_name)
    row = await _mapping_or_404(session, account_id, object_type, mapping_id)
    if row["standard"]:
        raise HubSpotError(400, f"Mapping {mapping_id} ({row['property']} to {row['salesforce_field']}) is a standard "
                                "mapping and cannot be deleted; set its syncRule to DONT_SYNC instead",
                           sub_category="STANDARD_MAPPING")
    await mapping_repo.delete_mapping(session, row["id"])

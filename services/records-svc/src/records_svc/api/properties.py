"""Properties and property groups v3 (HubSpot-compatible)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import Int32
from crm_common.responses import FastJSONResponse
from crm_common.timestamps import timestamp_or_none
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from records_svc import repository
from records_svc.api.deps import Auth, Session
from records_svc.catalog import (
    catalog_knowing,
    definition_from_row,
    invalidate_catalog,
    load_catalog,
    refresh_catalog,
    resolve_object_type,
)
from records_svc.domain.properties import FIELD_TYPES_BY_TYPE, MAX_UNIQUE_PROPERTIES, PropertyDefinition
from records_svc.domain.standard_properties import standard_groups

router = APIRouter(prefix="/crm/v3/properties", tags=["Properties"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429)
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


class OptionInput(BaseModel):
    label: str
    value: str
    displayOrder: Int32 = -1
    hidden: bool = False
    description: str = ""


class PropertyCreate(BaseModel):
    name: str
    label: str
    type: str
    fieldType: str
    groupName: str
    description: str = ""
    options: list[OptionInput] = Field(default_factory=list)
    displayOrder: Int32 = -1
    hasUniqueValue: bool = False
    hidden: bool = False
    formField: bool = True
    calculationFormula: str | None = None


class PropertyUpdate(BaseModel):
    label: str | None = None
    type: str | None = None
    fieldType: str | None = None
    groupName: str | None = None
    description: str | None = None
    options: list[OptionInput] | None = None
    displayOrder: Int32 | None = None
    hidden: bool | None = None
    formField: bool | None = None


class OptionOut(BaseModel):
    label: str
    value: str
    displayOrder: int
    hidden: bool
    description: str = ""


class ModificationMetadata(BaseModel):
    archivable: bool
    readOnlyDefinition: bool
    readOnlyValue: bool


class PropertyOut(BaseModel):
    name: str
    label: str
    type: str
    fieldType: str
    groupName: str
    description: str
    options: list[OptionOut]
    displayOrder: int
    hasUniqueValue: bool
    hidden: bool
    formField: bool
    calculated: bool
    hubspotDefined: bool
    modificationMetadata: ModificationMetadata
    archived: bool
    createdAt: str | None = None
    updatedAt: str | None = None


class PropertyCollection(BaseModel):
    results: list[PropertyOut]


class PropertyNameInput(BaseModel):
    name: str


class BatchPropertyCreate(BaseModel):
    inputs: list[PropertyCreate]


class BatchPropertyRead(BaseModel):
    inputs: list[PropertyNameInput]
    archived: bool = False


class BatchPropertyArchive(BaseModel):
    inputs: list[PropertyNameInput]


class GroupCreate(BaseModel):
    name: str
    label: str
    displayOrder: Int32 = -1


class GroupUpdate(BaseModel):
    label: str | None = None
    displayOrder: Int32 | None = None


class GroupOut(BaseModel):
    name: str
    label: str
    displayOrder: int
    archived: bool


class GroupCollection(BaseModel):
    results: list[GroupOut]


def property_out(prop: PropertyDefinition) -> dict[str, Any]:
    return {
        "name": prop.name, "label": prop.label, "type": prop.type, "fieldType": prop.field_type,
        "groupName": prop.group_name, "description": prop.description,
        "options": [{"label": o.label, "value": o.value, "displayOrder": o.display_order, "hidden": o.hidden,
                     "description": o.description} for o in prop.options],
        "displayOrder": prop.display_order, "hasUniqueValue": prop.has_unique_value, "hidden": prop.hidden,
        "formField": prop.form_field, "calculated": prop.calculated, "hubspotDefined": prop.hubspot_defined,
        "modificationMetadata": {"archivable": not prop.hubspot_defined,
                                 "readOnlyDefinition": prop.hubspot_defined,
                                 "readOnlyValue": prop.read_only_value or prop.calculated},
        "archived": prop.archived, "createdAt": timestamp_or_none(prop.created_at), "updatedAt": timestamp_or_none(prop.updated_at),
    }


def check_definition(type_: str, field_type: str, options: list[OptionInput] | None) -> None:
    allowed = FIELD_TYPES_BY_TYPE.get(type_)
    if allowed is None:
        raise HubSpotError(400, f"Invalid property type {type_!r}; use one of {', '.join(FIELD_TYPES_BY_TYPE)}",
                           errors=[{"message": f"invalid type {type_!r}", "code": "INVALID_TYPE", "in": "type"}])
    if field_type not in allowed:
        raise HubSpotError(400, f"fieldType {field_type!r} is not valid for type {type_!r}; use one of "
                                f"{', '.join(sorted(allowed))}",
                           errors=[{"message": "invalid fieldType", "code": "INVALID_FIELD_TYPE", "in": "fieldType"}])
    if type_ == "enumeration" and field_type != "booleancheckbox":
        values = [o.value for o in options or []]
        if not values and options is not None:
            raise HubSpotError(400, "An enumeration property needs at least one option")
        if len(set(values)) != len(values):
            raise HubSpotError(400, "Option values must be unique within a property")


async def _create(session: Any, account_id: int, objectType: str, payload: PropertyCreate) -> dict[str, Any]:
    object_type = await resolve_object_type(session, account_id, objectType)
    if not PROPERTY_NAME.match(payload.name):
        raise HubSpotError(400, f"Property name {payload.name!r} is invalid: use lowercase letters, digits and "
                                "underscores, starting with a letter (at most 100 characters)",
                           errors=[{"message": "invalid name", "code": "INVALID_PROPERTY_NAME", "in": "name"}])
    options = payload.options if payload.type == "enumeration" else []
    check_definition(payload.type, payload.fieldType, options if payload.type == "enumeration" else None)
    catalog = await refresh_catalog(session, account_id, object_type)
    if payload.name in catalog.properties:
        raise HubSpotError(409, f"A property named '{payload.name}' already exists.", category="CONFLICT",
                           sub_category="PROPERTY_ALREADY_EXISTS")
    if payload.hasUniqueValue:
        unique = [p for p in catalog.properties.values() if p.has_unique_value and not p.hubspot_defined]
        if len(unique) >= MAX_UNIQUE_PROPERTIES:
            raise HubSpotError(400, f"An object can have at most {MAX_UNIQUE_PROPERTIES} unique value properties")
    groups = set(standard_groups(object_type.id)) | {
        g["name"] for g in await repository.property_groups(session, account_id, object_type.id)}
    if payload.groupName not in groups:
        raise HubSpotError(400, f"Property group {payload.groupName!r} does not exist on {object_type.name}",
                           errors=[{"message": "unknown group", "code": "PROPERTY_GROUP_NOT_FOUND", "in": "groupName"}])
    row = await repository.insert_property(session, {
        "account_id": account_id, "object_type_id": object_type.id, "name": payload.name, "label": payload.label,
        "type": payload.type, "field_type": payload.fieldType, "group_name": payload.groupName,
        "description": payload.description, "options": [o.model_dump() for o in options],
        "display_order": payload.displayOrder, "has_unique_value": payload.hasUniqueValue, "hidden": payload.hidden,
        "form_field": payload.formField, "calculation_formula": payload.calculationFormula,
    })
    if not row:
        raise HubSpotError(409, f"A property named '{payload.name}' already exists.", category="CONFLICT")
    invalidate_catalog(session, account_id, object_type.id)
    return property_out(definition_from_row(row))


@router.get("/{objectType}", response_model=PropertyCollection, responses=ERRORS, summary="List properties")
async def list_properties(objectType: str, auth: Auth, session: Session, archived: bool = False,
                          properties: Annotated[list[str] | None, Query()] = None) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    if archived:
        rows = await repository.custom_properties(session, auth.account_id, object_type.id, include_archived=True)
        defs = [definition_from_row(r) for r in rows if r["archived"]]
    else:
        defs = list((await load_catalog(session, auth.account_id, object_type)).properties.values())
    wanted = {p.strip() for v in properties or [] for p in v.split(",") if p.strip()}
    results = [property_out(d) for d in defs if not wanted or d.name in wanted]
    return FastJSONResponse({"results": results})


@router.post("/{objectType}", status_code=201, response_model=PropertyOut, responses=ERRORS,
             summary="Create a property")
async def create_property(objectType: str, payload: PropertyCreate, auth: Auth, session: Session) -> Any:
    return FastJSONResponse(await _create(session, auth.account_id, objectType, payload), status_code=201)


@router.get("/{objectType}/groups", response_model=GroupCollection, responses=ERRORS, summary="List property groups")
async def list_groups(objectType: str, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    results = [{"name": n, "label": label, "displayOrder": i, "archived": False}
               for i, (n, label) in enumerate(standard_groups(object_type.id).items())]
    for g in await repository.property_groups(session, auth.account_id, object_type.id):
        results.append({"name": g["name"], "label": g["label"], "displayOrder": g["display_order"],
                        "archived": g["archived"]})
    return FastJSONResponse({"results": results})


@router.post("/{objectType}/groups", status_code=201, response_model=GroupOut, responses=ERRORS,
             summary="Create a property group")
async def create_group(objectType: str, payload: GroupCreate, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    if not PROPERTY_NAME.match(payload.name):
        raise HubSpotError(400, f"Group name {payload.name!r} is invalid: use lowercase letters, digits and underscores")
    existing = {g["name"] for g in await repository.property_groups(session, auth.account_id, object_type.id)}
    if payload.name in standard_groups(object_type.id) or payload.name in existing:
        raise HubSpotError(409, f"A property group named '{payload.name}' already exists.", category="CONFLICT")
    g = await repository.upsert_property_group(session, auth.account_id, object_type.id, payload.name,
                                               payload.label, payload.displayOrder)
    return FastJSONResponse({"name": g["name"], "label": g["label"], "displayOrder": g["display_order"],
                           "archived": False}, status_code=201)


@router.get("/{objectType}/groups/{groupName}", response_model=GroupOut, responses=ERRORS,
            summary="Read a property group")
async def get_group(objectType: str, groupName: str, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    standard = standard_groups(object_type.id)
    if groupName in standard:
        return FastJSONResponse({"name": groupName, "label": standard[groupName], "displayOrder": -1,
                               "archived": False})
    for g in await repository.property_groups(session, auth.account_id, object_type.id):
        if g["name"] == groupName:
            return FastJSONResponse({"name": g["name"], "label": g["label"], "displayOrder": g["display_order"],
                                   "archived": False})
    raise HubSpotError(404, f"Property group {groupName} does not exist on {object_type.name}")


@router.patch("/{objectType}/groups/{groupName}", response_model=GroupOut, responses=ERRORS,
              summary="Update a property group")
async def update_group(objectType: str, groupName: str, payload: GroupUpdate, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    if groupName in standard_groups(object_type.id):
        raise HubSpotError(400, f"{groupName} is a HubSpot-defined group and cannot be changed")
    for g in await repository.property_groups(session, auth.account_id, object_type.id):
        if g["name"] == groupName:
            updated = await repository.upsert_property_group(
                session, auth.account_id, object_type.id, groupName, payload.label or g["label"],
                g["display_order"] if payload.displayOrder is None else payload.displayOrder)
            return FastJSONResponse({"name": updated["name"], "label": updated["label"],
                                   "displayOrder": updated["display_order"], "archived": False})
    raise HubSpotError(404, f"Property group {groupName} does not exist on {object_type.name}")


@router.delete("/{objectType}/groups/{groupName}", status_code=204, responses=ERRORS,
               summary="Archive a property group")
async def archive_group(objectType: str, groupName: str, auth: Auth, session: Session) -> Response:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    if groupName in standard_groups(object_type.id):
        raise HubSpotError(400, f"{groupName} is a HubSpot-defined group and cannot be archived")
    if not await repository.archive_property_group(session, auth.account_id, object_type.id, groupName):
        raise HubSpotError(404, f"Property group {groupName} does not exist on {object_type.name}")
    return Response(status_code=204)


@router.post("/{objectType}/batch/create", status_code=201, response_model=PropertyCollection, responses=ERRORS,
             summary="Create a batch of properties")
async def batch_create_properties(objectType: str, payload: BatchPropertyCreate, auth: Auth, session: Session) -> Any:
    results = [await _create(session, auth.account_id, objectType, item) for item in payload.inputs]
    return FastJSONResponse({"status": "COMPLETE", "results": results}, status_code=201)


@router.post("/{objectType}/batch/read", response_model=PropertyCollection, responses=ERRORS,
             summary="Read a batch of properties")
async def batch_read_properties(objectType: str, payload: BatchPropertyRead, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await load_catalog(session, auth.account_id, object_type)
    results = [property_out(catalog.properties[i.name]) for i in payload.inputs if i.name in catalog.properties]
    return FastJSONResponse({"status": "COMPLETE", "results": results})


@router.post("/{objectType}/batch/archive", status_code=204, responses=ERRORS, summary="Archive a batch of properties")
async def batch_archive_properties(objectType: str, payload: BatchPropertyArchive, auth: Auth,
                                   session: Session) -> Response:
    for item in payload.inputs:
        await _archive(session, auth.account_id, objectType, item.name)
    return Response(status_code=204)


async def _archive(session: Any, account_id: int, objectType: str, name: str) -> None:
    object_type = await resolve_object_type(session, account_id, objectType)
    catalog = await catalog_knowing(session, account_id, object_type, [name])
    prop = catalog.properties.get(name)
    if prop is None:
        raise HubSpotError(404, f"Property {name} does not exist on {object_type.name}")
    if prop.hubspot_defined:
        raise HubSpotError(400, f"{name} is a HubSpot-defined property and cannot be archived")
    await repository.archive_property(session, account_id, object_type.id, name)
    invalidate_catalog(session, account_id, object_type.id)


@router.get("/{objectType}/{propertyName}", response_model=PropertyOut, responses=ERRORS, summary="Read a property")
async def get_property(objectType: str, propertyName: str, auth: Auth, session: Session,
                       archived: bool = False) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await catalog_knowing(session, auth.account_id, object_type, [propertyName])
    prop = catalog.properties.get(propertyName)
    if prop is None and archived:
        row = await repository.custom_property(session, auth.account_id, object_type.id, propertyName)
        if row and row["archived"]:
            prop = definition_from_row(row)
    if prop is None:
        raise HubSpotError(404, f"Property {propertyName} does not exist on {object_type.name}")
    return FastJSONResponse(property_out(prop))


@router.patch("/{objectType}/{propertyName}", response_model=PropertyOut, responses=ERRORS,
              summary="Update a property")
async def update_property(objectType: str, propertyName: str, payload: PropertyUpdate, auth: Auth,
                          session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await catalog_knowing(session, auth.account_id, object_type, [propertyName])
    prop = catalog.properties.get(propertyName)
    if prop is None:
        raise HubSpotError(404, f"Property {propertyName} does not exist on {object_type.name}")
    if prop.hubspot_defined:
        raise HubSpotError(400, f"{propertyName} is a HubSpot-defined property; its definition is read-only")
    new_type = payload.type or prop.type
    new_field_type = payload.fieldType or prop.field_type
    check_definition(new_type, new_field_type, payload.options)
    columns = {"label": payload.label, "type": payload.type, "field_type": payload.fieldType,
               "group_name": payload.groupName, "description": payload.description,
               "display_order": payload.displayOrder, "hidden": payload.hidden, "form_field": payload.formField,
               "options": [o.model_dump() for o in payload.options] if payload.options is not None else None}
    changes = {k: v for k, v in columns.items() if v is not None}
    if not changes:
        return FastJSONResponse(property_out(prop))
    row = await repository.update_property(session, auth.account_id, object_type.id, propertyName, changes)
    invalidate_catalog(session, auth.account_id, object_type.id)
    return FastJSONResponse(property_out(definition_from_row(row)))


@router.delete("/{objectType}/{propertyName}", status_code=204, responses=ERRORS, summary="Archive a property")
async def archive_property(objectType: str, propertyName: str, auth: Auth, session: Session) -> Response:
    await _archive(session, auth.account_id, objectType, propertyName)
    return Response(status_code=204)

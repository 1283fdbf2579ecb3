"""Custom object schemas (HubSpot's /crm-object-schemas/v3/schemas)."""

from __future__ import annotations

import re
from typing import Any

from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import Int32, as_id
from crm_common.responses import FastJSONResponse
from crm_common.timestamps import timestamp_or_none
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from records_svc import repository
from records_svc.api.deps import Auth, Session
from records_svc.api.properties import OptionInput, PropertyOut, check_definition, property_out
from records_svc.catalog import load_catalog, object_type_from_schema, resolve_object_type
from records_svc.domain.associations import HUBSPOT_DEFINED
from records_svc.domain.object_types import find_standard_object_type

router = APIRouter(prefix="/crm-object-schemas/v3/schemas", tags=["Schemas"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429)
SCHEMA_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
# HubSpot's legacy names in `associatedObjects`.
LEGACY_OBJECT_NAMES = {"CONTACT": "0-1", "COMPANY": "0-2", "DEAL": "0-3", "TICKET": "0-5"}


class Labels(BaseModel):
    singular: str = Field(min_length=1)
    plural: str = Field(min_length=1)


class SchemaProperty(BaseModel):
    name: str
    label: str
    type: str = "string"
    fieldType: str = "text"
    description: str = ""
    options: list[OptionInput] = Field(default_factory=list)
    hasUniqueValue: bool = False
    displayOrder: Int32 = -1
    hidden: bool = False
    formField: bool = True
    groupName: str | None = None
    isPrimaryDisplayLabel: bool = False


class SchemaCreate(BaseModel):
    name: str
    labels: Labels
    description: str = ""
    primaryDisplayProperty: str | None = None
    secondaryDisplayProperties: list[str] = Field(default_factory=list)
    searchableProperties: list[str] = Field(default_factory=list)
    requiredProperties: list[str] = Field(default_factory=list)
    properties: list[SchemaProperty] = Field(default_factory=list)
    associatedObjects: list[str] = Field(default_factory=list)


class SchemaUpdate(BaseModel):
    labels: Labels | None = None
    description: str | None = None
    primaryDisplayProperty: str | None = None
    secondaryDisplayProperties: list[str] | None = None
    searchableProperties: list[str] | None = None
    requiredProperties: list[str] | None = None


class AssociationDefinitionIn(BaseModel):
    fromObjectTypeId: str
    toObjectTypeId: str
    name: str | None = None


class AssociationDefinitionOut(BaseModel):
    id: str
    fromObjectTypeId: str
    toObjectTypeId: str
    name: str | None = None


class ObjectSchema(BaseModel):
    id: str
    objectTypeId: str
    fullyQualifiedName: str
    name: str
    labels: Labels
    description: str | None = None
    primaryDisplayProperty: str | None = None
    secondaryDisplayProperties: list[str]
    searchableProperties: list[str]
    requiredProperties: list[str]
    properties: list[PropertyOut]
    associations: list[AssociationDefinitionOut]
    archived: bool
    createdAt: str | None = None
    updatedAt: str | None = None


class SchemaCollection(BaseModel):
    results: list[ObjectSchema]


async def _schema_out(session: Any, account_id: int, schema: dict[str, Any]) -> dict[str, Any]:
    object_type = object_type_from_schema(schema)
    catalog = await load_catalog(session, account_id, object_type)
    associations = await repository.schema_associations(session, account_id, object_type.id)
    return {
        "id": str(schema["type_number"]), "objectTypeId": object_type.id,
        "fullyQualifiedName": f"p{account_id}_{schema['name']}", "name": schema["name"],
        "labels": {"singular": schema["label_singular"], "plural": schema["label_plural"]},
        "description": schema["description"], "primaryDisplayProperty": schema["primary_display_property"],
        "secondaryDisplayProperties": schema["secondary_display_properties"],
        "searchableProperties": schema["searchable_properties"], "requiredProperties": schema["required_properties"],
        "properties": [property_out(p) for p in catalog.properties.values() if not p.hubspot_defined],
        "associations": [{"id": str(a["id"]), "fromObjectTypeId": a["from_object_type_id"],
                          "toObjectTypeId": a["to_object_type_id"], "name": a["name"]} for a in associations],
        "archived": schema["archived"], "createdAt": timestamp_or_none(schema["created_at"]), "updatedAt": timestamp_or_none(schema["updated_at"]),
    }


async def _target_type_id(session: Any, account_id: int, key: str) -> str:
    if key.upper() in LEGACY_OBJECT_NAMES:
        return LEGACY_OBJECT_NAMES[key.upper()]
    return (await resolve_object_type(session, account_id, key)).id


async def _associate_types(session: Any, account_id: int, from_type: str, to_type: str,
                           name: str | None) -> dict[str, Any]:
    """Allow records of two types to associate: a schema association plus the pair's default types."""
    row = await repository.insert_schema_association(session, account_id, from_type, to_type, name)
    existing = await repository.association_definitions(session, account_id, from_type, to_type)
    if not any(d["category"] == HUBSPOT_DEFINED and d["label"] is None for d in existing):
        forward = await repository.insert_association_definition(session, account_id, from_type, to_type, name, None,
                                                                 category=HUBSPOT_DEFINED)
        if from_type == to_type:
            await repository.link_inverse_definitions(session, account_id, forward["type_id"], forward["type_id"])
        else:
            backward = await repository.insert_association_definition(session, account_id, to_type, from_type, name,
                                                                      None, category=HUBSPOT_DEFINED)
            await repository.link_inverse_definitions(session, account_id, forward["type_id"], backward["type_id"])
    return row


def _check_property_names(payload_props: set[str], **named: Any) -> None:
    for field, value in named.items():
        values = value if isinstance(value, list) else [value] if value else []
        missing = [v for v in values if v not in payload_props]
        if missing:
            raise HubSpotError(400, f"{field} names {missing[0]!r}, which is not one of the schema's properties",
                               errors=[{"message": "unknown property", "code": "PROPERTY_DOESNT_EXIST",
                                        "context": {"propertyName": [missing[0]]}}])


@router.get("", response_model=SchemaCollection, responses=ERRORS, summary="List custom object schemas")
async def list_schemas(auth: Auth, session: Session, archived: bool = False) -> Any:
    schemas = await repository.list_schemas(session, auth.account_id, archived=archived)
    return FastJSONResponse({"results": [await _schema_out(session, auth.account_id, s) for s in schemas]})


@router.post("", status_code=201, response_model=ObjectSchema, responses=ERRORS, summary="Define a custom object")
async def create_schema(payload: SchemaCreate, auth: Auth, session: Session) -> Any:
    if not SCHEMA_NAME.match(payload.name):
        raise HubSpotError(400, f"Object name {payload.name!r} is invalid: start with a letter; use letters, digits "
                                "and underscores", errors=[{"message": "invalid name", "code": "INVALID_NAME",
                                                             "in": "name"}])
    if find_standard_object_type(payload.name) or await repository.find_schema(session, auth.account_id,
                                                                                 payload.name):
        raise HubSpotError(409, f"An object type named '{payload.name}' already exists", category="CONFLICT",
                           sub_category="OBJECT_TYPE_ALREADY_EXISTS")
    names = [p.name for p in payload.properties]
    if len(set(names)) != len(names):
        raise HubSpotError(400, "Property names must be unique within a schema")
    primary = payload.primaryDisplayProperty or next((p.name for p in payload.properties if p.isPrimaryDisplayLabel),
                                                     None)
    _check_property_names(set(names), primaryDisplayProperty=primary,
                          secondaryDisplayProperties=payload.secondaryDisplayProperties,
                          searchableProperties=payload.searchableProperties,
                          requiredProperties=payload.requiredProperties)
    for prop in payload.properties:
        check_definition(prop.type, prop.fieldType, prop.options if prop.type == "enumeration" else None)
    schema = await repository.insert_schema(session, {
        "account_id": auth.account_id, "name": payload.name, "label_singular": payload.labels.singular,
        "label_plural": payload.labels.plural, "description": payload.description,
        "primary_display_property": primary, "secondary_display_properties": payload.secondaryDisplayProperties,
        "searchable_properties": payload.searchableProperties or ([primary] if primary else []),
        "required_properties": payload.requiredProperties,
    })
    type_id = f"2-{schema['type_number']}"
    group = f"{type_id.replace('-', '_')}_information"
    for prop in payload.properties:
        await repository.insert_property(session, {
            "account_id": auth.account_id, "object_type_id": type_id, "name": prop.name, "label": prop.label,
            "type": prop.type, "field_type": prop.fieldType, "group_name": prop.groupName or group,
            "description": prop.description, "options": [o.model_dump() for o in prop.options],
            "display_order": prop.displayOrder, "has_unique_value": prop.hasUniqueValue, "hidden": prop.hidden,
            "form_field": prop.formField, "calculation_formula": None,
        })
    for target in payload.associatedObjects:
        await _associate_types(session, auth.account_id, type_id, await _target_type_id(session, auth.account_id,
                                                                                           target), None)
    return FastJSONResponse(await _schema_out(session, auth.account_id, schema), status_code=201)


async def _custom_schema(session: Any, account_id: int, key: str) -> dict[str, Any]:
    schema = await repository.find_schema(session, account_id, key)
    if schema is None:
        raise HubSpotError(404, f"No custom object schema {key!r} exists", category="OBJECT_NOT_FOUND")
    return schema


@router.get("/{objectType}", response_model=ObjectSchema, responses=ERRORS, summary="Read a custom object schema")
async def get_schema(objectType: str, auth: Auth, session: Session) -> Any:
    schema = await _custom_schema(session, auth.account_id, objectType)
    return FastJSONResponse(await _schema_out(session, auth.account_id, schema))


@router.patch("/{objectType}", response_model=ObjectSchema, responses=ERRORS, summary="Update a custom object schema")
async def update_schema(objectType: str, payload: SchemaUpdate, auth: Auth, session: Session) -> Any:
    schema = await _custom_schema(session, auth.account_id, objectType)
    catalog = await load_catalog(session, auth.account_id, object_type_from_schema(schema))
    _check_property_names(set(catalog.properties), primaryDisplayProperty=payload.primaryDisplayProperty,
                          secondaryDisplayProperties=payload.secondaryDisplayProperties or [],
                          searchableProperties=payload.searchableProperties or [],
                          requiredProperties=payload.requiredProperties or [])
    changes = {
        "label_singular": payload.labels.singular if payload.labels else None,
        "label_plural": payload.labels.plural if payload.labels else None,
        "description": payload.description, "primary_display_property": payload.primaryDisplayProperty,
        "secondary_display_properties": payload.secondaryDisplayProperties,
        "searchable_properties": payload.searchableProperties, "required_properties": payload.requiredProperties,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if changes:
        schema = await repository.update_schema(session, auth.account_id, schema["type_number"], changes)
    return FastJSONResponse(await _schema_out(session, auth.account_id, schema))


@router.delete("/{objectType}", status_code=204, responses=ERRORS, summary="Delete a custom object schema")
async def delete_schema(objectType: str, auth: Auth, session: Session, archived: bool = False) -> Response:
    schema = await repository.find_schema(session, auth.account_id, objectType)
    if schema is None and archived:
        for candidate in await repository.list_schemas(session, auth.account_id, archived=True):
            if objectType in (f"2-{candidate['type_number']}", candidate["name"]):
                schema = candidate
    if schema is None:
        raise HubSpotError(404, f"No custom object schema {objectType!r} exists", category="OBJECT_NOT_FOUND")
    count = await repository.count_records(session, auth.account_id, f"2-{schema['type_number']}")
    if count:
        raise HubSpotError(409, f"The {schema['name']} object still has {count} record(s) (archived ones included); "
                                "delete them before deleting the schema", category="CONFLICT",
                           sub_category="OBJECT_TYPE_HAS_RECORDS")
    await repository.delete_schema(session, auth.account_id, schema["type_number"], hard=archived)
    return Response(status_code=204)


@router.post("/{objectType}/associations", status_code=201, response_model=AssociationDefinitionOut,
             responses=ERRORS, summary="Allow a custom object to associate with another object type")
async def create_schema_association(objectType: str, payload: AssociationDefinitionIn, auth: Auth,
                                    session: Session) -> Any:
    await _custom_schema(session, auth.account_id, objectType)
    from_type = await _target_type_id(session, auth.account_id, payload.fromObjectTypeId)
    to_type = await _target_type_id(session, auth.account_id, payload.toObjectTypeId)
    row = await _associate_types(session, auth.account_id, from_type, to_type, payload.name)
    return FastJSONResponse({"id": str(row["id"]), "fromObjectTypeId": from_type, "toObjectTypeId": to_type,
                           "name": row["name"]}, status_code=201)


@router.delete("/{objectType}/associations/{associationIdentifier}", status_code=204, responses=ERRORS,
               summary="Remove an association definition from a custom object")
async def delete_schema_association(objectType: str, associationIdentifier: str, auth: Auth,
                                    session: Session) -> Response:
    await _custom_schema(session, auth.account_id, objectType)
    association_id = as_id(associationIdentifier)
    if association_id is None or not await repository.delete_schema_association(
            session, auth.account_id, association_id):
        raise HubSpotError(404, f"No association definition {associationIdentifier} on {objectType}")
    return Response(status_code=204)



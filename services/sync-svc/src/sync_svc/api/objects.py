"""`/corral/v1/salesforce/objects`: which objects sync, and their field mappings."""

from __future__ import annotations

from typing import Any

from crm_common.errors import error_responses
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sync_svc.api.deps import Reader, Resources, Session, Writer
from sync_svc.service import objects as service

router = APIRouter(prefix="/corral/v1/salesforce/objects", tags=["Salesforce sync"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429, 502, 503)
RULES = "PREFER_SALESFORCE_UNLESS_BLANK, ALWAYS_SALESFORCE, TWO_WAY or DONT_SYNC"


class ObjectInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    salesforceObject: str = Field(description="contacts: Contact or Lead; companies: Account; deals: Opportunity")
    enabled: bool = True


class SyncedObject(BaseModel):
    objectType: str
    objectTypeId: str
    salesforceObject: str
    salesforceObjects: list[str] | None = None
    enabled: bool
    mappings: int | None = None
    warnings: list[str] | None = None


class SyncedObjects(BaseModel):
    results: list[SyncedObject]


class MappingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    property: str = Field(min_length=1, max_length=256)
    salesforceField: str = Field(min_length=1, max_length=256)
    syncRule: str = Field(default="PREFER_SALESFORCE_UNLESS_BLANK", description=RULES)


class MappingPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    property: str | None = Field(default=None, min_length=1, max_length=256)
    salesforceField: str | None = Field(default=None, min_length=1, max_length=256)
    syncRule: str | None = Field(default=None, description=RULES)


class Mapping(BaseModel):
    id: str
    property: str
    salesforceField: str
    syncRule: str
    standard: bool
    warnings: list[str]


class Mappings(BaseModel):
    objectType: str
    salesforceObject: str
    results: list[Mapping]
    warnings: list[str] = Field(description="What will fail for every record (required fields nothing writes)")


@router.get("", response_model=SyncedObjects, response_model_exclude_none=True, responses=ERRORS,
            summary="The objects that can sync, with their Salesforce object and whether they are enabled")
async def list_objects(auth: Reader, session: Session) -> Any:
    return {"results": await service.list_objects(account_id=auth.account_id, session=session)}


@router.put("/{objectType}", response_model=SyncedObject, response_model_exclude_none=True, responses=ERRORS,
            summary="Choose an object's Salesforce object and enable it (the first time, with its standard mappings)")
async def set_object(objectType: str, body: ObjectInput, auth: Writer, session: Session,
                     resources: Resources) -> Any:
    return await service.set_object(account_id=auth.account_id, object_type_name=objectType,
                                    salesforce_object=body.salesforceObject, enabled=body.enabled, session=session,
                                    connector=resources.connector, records=resources.records)


@router.get("/{objectType}/mappings", response_model=Mappings, responses=ERRORS,
            summary="An object's field mappings, each with the warnings of what will fail later")
async def list_mappings(objectType: str, auth: Reader, session: Session, resources: Resources) -> Any:
    return await service.list_mappings(account_id=auth.account_id, object_type_name=objectType, session=session,
                                       connector=resources.connector, records=resources.records)


@router.post("/{objectType}/mappings", status_code=201, response_model=Mapping, responses=ERRORS,
             summary="Map a property to a Salesforce field with a sync rule (checked against both definitions)")
async def create_mapping(objectType: str, body: MappingInput, auth: Writer, session: Session,
                         resources: Resources) -> Any:
    return await service.create_mapping(account_id=auth.account_id, object_type_name=objectType,
                                        property_name=body.property, field_name=body.salesforceField,
                                        rule=service.parse_rule(body.syncRule), session=session,
                                        connector=resources.connector, records=resources.records)


@router.patch("/{objectType}/mappings/{mappingId}", response_model=Mapping, responses=ERRORS,
              summary="Change a mapping's rule (standard mappings), property or field")
async def update_mapping(objectType: str, mappingId: str, body: MappingPatch, auth: Writer, session: Session,
                         resources: Resources) -> Any:
    return await service.update_mapping(
        account_id=auth.account_id, object_type_name=objectType, mapping_id=mappingId, property_name=body.property,
        field_name=body.salesforceField, rule=service.parse_rule(body.syncRule) if body.syncRule else None,
        session=session, connector=resources.connector, records=resources.records)


@router.delete("/{objectType}/mappings/{mappingId}", status_code=204, responses=ERRORS,
               summary="Delete a mapping (standard mappings cannot be deleted: set them to DONT_SYNC)")
async def delete_mapping(objectType: str, mappingId: str, auth: Writer, session: Session) -> Response:
    await service.delete_mapping(account_id=auth.account_id, object_type_name=objectType, mapping_id=mappingId,
                                 session=session)
    return Response(status_code=204)

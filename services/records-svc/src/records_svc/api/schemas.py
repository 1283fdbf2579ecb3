"""Request and response models of the HubSpot-compatible API (they document the OpenAPI too)."""

from __future__ import annotations

from typing import Any, Literal

from crm_common.inputs import Int32
from pydantic import BaseModel, ConfigDict, Field

PropertyValue = str | int | float | bool | None


class AssociationSpec(BaseModel):
    associationCategory: Literal["HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"] = "HUBSPOT_DEFINED"
    associationTypeId: Int32


class PublicObjectId(BaseModel):
    id: str | int


class AssociationForCreate(BaseModel):
    to: PublicObjectId
    types: list[AssociationSpec] = Field(min_length=1)


class ObjectCreateInput(BaseModel):
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    associations: list[AssociationForCreate] = Field(default_factory=list)
    objectWriteTraceId: str | None = None


class ObjectUpdateInput(BaseModel):
    properties: dict[str, PropertyValue]


class BatchCreateInput(BaseModel):
    inputs: list[ObjectCreateInput]


class BatchUpdateItem(BaseModel):
    id: str | int
    idProperty: str | None = None
    properties: dict[str, PropertyValue]
    objectWriteTraceId: str | None = None


class BatchUpdateInput(BaseModel):
    inputs: list[BatchUpdateItem]


class BatchUpsertItem(BaseModel):
    id: str | int
    idProperty: str | None = None
    properties: dict[str, PropertyValue]
    objectWriteTraceId: str | None = None


class BatchUpsertInput(BaseModel):
    inputs: list[BatchUpsertItem]


class BatchReadItem(BaseModel):
    id: str | int


class BatchReadInput(BaseModel):
    inputs: list[BatchReadItem]
    properties: list[str] = Field(default_factory=list)
    propertiesWithHistory: list[str] = Field(default_factory=list)
    idProperty: str | None = None


class BatchArchiveInput(BaseModel):
    inputs: list[BatchReadItem]


class SearchFilter(BaseModel):
    propertyName: str
    operator: str
    value: PropertyValue = None
    highValue: PropertyValue = None
    values: list[PropertyValue] | None = None


class SearchFilterGroup(BaseModel):
    filters: list[SearchFilter] = Field(default_factory=list)


class SearchSort(BaseModel):
    propertyName: str
    direction: Literal["ASCENDING", "DESCENDING", "ASC", "DESC"] = "ASCENDING"


class SearchRequest(BaseModel):
    query: str | None = None
    filterGroups: list[SearchFilterGroup] = Field(default_factory=list)
    sorts: list[SearchSort | str] = Field(default_factory=list)
    properties: list[str] = Field(default_factory=list)
    limit: int = Field(default=10, ge=0)
    after: str | int | None = None


class GdprDeleteInput(BaseModel):
    objectId: str
    idProperty: str | None = None


class ValueWithTimestamp(BaseModel):
    value: str
    timestamp: str
    sourceType: str
    sourceId: str | None = None


class AssociatedId(BaseModel):
    id: str
    type: str


class AssociationResults(BaseModel):
    results: list[AssociatedId]


class SimplePublicObject(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    properties: dict[str, str | None]
    propertiesWithHistory: dict[str, list[ValueWithTimestamp]] | None = None
    associations: dict[str, AssociationResults] | None = None
    createdAt: str
    updatedAt: str
    archived: bool = False
    archivedAt: str | None = None


class SimplePublicUpsertObject(SimplePublicObject):
    new: bool


class NextPage(BaseModel):
    after: str
    link: str | None = None


class Paging(BaseModel):
    next: NextPage | None = None


class CollectionResponse(BaseModel):
    results: list[SimplePublicObject]
    paging: Paging | None = None


class SearchResponse(BaseModel):
    total: int
    results: list[SimplePublicObject]
    paging: Paging | None = None


class StandardError(BaseModel):
    status: str
    category: str
    message: str
    subCategory: str | None = None
    context: dict[str, list[str]] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class BatchResponse(BaseModel):
    status: Literal["PENDING", "PROCESSING", "CANCELED", "COMPLETE"]
    results: list[SimplePublicObject]
    startedAt: str
    completedAt: str
    requestedAt: str | None = None
    links: dict[str, str] | None = None
    numErrors: int | None = None
    errors: list[StandardError] | None = None


class BatchUpsertResponse(BatchResponse):
    results: list[SimplePublicUpsertObject]  # type: ignore[assignment]

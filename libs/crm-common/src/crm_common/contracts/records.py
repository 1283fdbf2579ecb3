"""records-svc's internal API: the models of its routes and the one client every service calls it with.

Routes and their rules are described in `services/records-svc/INTERNAL_API.md`; records-svc declares
these models on its routes. Rows, results and journal entries are TypedDicts: an import sends and reads
20,000 of them per call, and plain dicts validated by pydantic-core cost a fraction of models.
The client also reaches the public routes a service needs from records-svc (properties, labels,
batch read, search), signed for the account it acts for.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Any, Literal, NotRequired

import orjson
from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict

from crm_common.contracts.base import InternalClient, ServiceCallError, segment
from crm_common.http import ServiceClient

MAX_BULK_ROWS = 20_000
BATCH_KEY = ("Names this write: the first answer to a key is stored with the write and every later call with "
             "the same key gets it back unchanged, writing nothing (kept RECORDS_SVC_BATCH_ANSWER_RETENTION_HOURS)")

Value = str | int | float | bool | None
WriteOperation = Literal["CREATE", "UPDATE", "UPSERT"]


# --- POST /internal/v1/records/{objectType}/bulk-upsert ---------------------------------------------------


class BulkUpsertOptions(BaseModel):
    """Everything of a bulk upsert but its rows."""

    operation: WriteOperation = "UPSERT"
    idProperty: str | None = Field(default=None, description="email, hs_object_id, a unique property, or none")
    keepExisting: list[str] = Field(default_factory=list, description='["*"] or property names to keep when set')
    sourceType: str = Field(default="IMPORT", description="The history's source (IMPORT, SALESFORCE, MOBILE_IOS...)")
    sourceId: str | None = None
    operationId: str | None = Field(default=None, description="Journal entries are grouped (and undone) by it")
    batchKey: str | None = Field(default=None, max_length=500, description=BATCH_KEY)


class BulkRowInput(TypedDict):
    ref: int
    properties: dict[str, Value]
    id: NotRequired[str | None]  # the key value; when absent it is taken from properties[idProperty]


class BulkUpsertRequest(BulkUpsertOptions):
    rows: list[BulkRowInput]


class BulkRowError(TypedDict):
    code: str
    message: str
    property: str | None
    value: str | None


class BulkRowResult(TypedDict):
    ref: int
    id: str | None
    status: Literal["CREATED", "UPDATED", "UNCHANGED", "ERROR"]
    errors: list[BulkRowError]


class BulkUpsertResponse(BaseModel):
    results: list[BulkRowResult]
    created: int
    updated: int
    unchanged: int
    failed: int


# --- POST /internal/v1/records/{objectType}/resolve ------------------------------------------------------


class ResolveRequest(BaseModel):
    property: str
    values: list[str] = Field(max_length=MAX_BULK_ROWS)


class ResolveResponse(BaseModel):
    matches: dict[str, list[str]] = Field(description="normalised value -> ids (a company domain may match several)")


# --- POST /internal/v1/associations/bulk ---------------------------------------------------------------


class AssociationInput(TypedDict):
    fromObjectType: str
    fromId: str | int
    toObjectType: str
    toId: str | int
    associationCategory: NotRequired[str]  # HUBSPOT_DEFINED when left out
    associationTypeId: NotRequired[int | None]  # the pair's default when left out


class BulkAssociationRequest(BaseModel):
    operationId: str | None = None
    sourceType: str = "IMPORT"
    batchKey: str | None = Field(default=None, max_length=500, description=BATCH_KEY)
    inputs: list[AssociationInput] = Field(max_length=MAX_BULK_ROWS)


class BulkAssociationResult(TypedDict):
    index: int
    status: Literal["CREATED", "EXISTS", "ERROR"]
    error: NotRequired[str | None]


class BulkAssociationResponse(BaseModel):
    results: list[BulkAssociationResult]


# --- GET /internal/v1/operations/{operationId}/journal and POST .../undo -----------------------------------


class JournalEntry(TypedDict):
    id: str
    recordId: str
    objectTypeId: str
    kind: str  # CREATE, UPDATE, ARCHIVE, ASSOCIATE, ...
    oldValues: dict[str, Any] | None
    newValues: dict[str, Any] | None
    association: dict[str, Any] | None
    createdAt: str | None
    undoneAt: str | None


class PagingNext(BaseModel):
    after: str


class Paging(BaseModel):
    next: PagingNext


class JournalPage(BaseModel):
    results: list[JournalEntry]
    paging: Paging | None = None


class UndoRequest(BaseModel):
    sourceType: str = "API"


class UndoConflict(TypedDict):
    recordId: str
    property: str
    expected: Any
    actual: Any


class UndoReport(BaseModel):
    deletedRecords: list[str]
    restoredValues: int
    restoredRecords: list[str]
    archivedRecords: list[str]
    removedAssociations: int
    restoredAssociations: int
    conflicts: list[dict[str, Any]]


# --- merges: GET .../{objectType}/{id}/snapshot, POST /internal/v1/merges/apply and /unapply ----------------


class OutgoingAssociation(TypedDict):
    toObjectTypeId: str
    toId: str
    category: str
    typeId: int


class IncomingAssociation(TypedDict):
    fromObjectTypeId: str
    fromId: str
    category: str
    typeId: int


class RecordSnapshot(TypedDict):
    """Everything merge-svc needs to plan a merge and, kept, to undo it."""

    id: str
    objectTypeId: str
    properties: dict[str, Any]
    history: dict[str, Any]
    createdAt: str | None
    updatedAt: str | None
    archived: bool
    mergedInto: str | None
    associations: list[OutgoingAssociation]
    incomingAssociations: list[IncomingAssociation]


class MergeApplyRequest(BaseModel):
    mergeId: str
    objectType: str
    primaryId: int
    secondaryId: int | None = None
    secondaryIds: list[int] | None = Field(None, min_length=1, max_length=100,
                                           description="A cluster merge: every record merged into the primary")
    properties: dict[str, Value]

    def secondaries(self) -> list[int]:
        """Every record merged into the primary (one for HubSpot's merge)."""
        if self.secondaryIds:
            return list(self.secondaryIds)
        if self.secondaryId is None:
            raise ValueError("secondaryId or secondaryIds is required")
        return [self.secondaryId]


class MergeApplyResponse(BaseModel):
    id: str
    record: dict[str, Any] = Field(description="The new record as the public API shows it, every property")
    mergedIds: list[str]
    movedAssociations: int = 0


class MergeUnapplyRequest(BaseModel):
    mergeId: str
    objectType: str
    mergedId: int
    primary: RecordSnapshot
    secondary: RecordSnapshot | None = None
    secondaries: list[RecordSnapshot] | None = Field(None, min_length=1, description="A cluster merge's snapshots")

    def secondary_snapshots(self) -> list[RecordSnapshot]:
        if self.secondaries:
            return list(self.secondaries)
        if self.secondary is None:
            raise ValueError("secondary or secondaries is required")
        return [self.secondary]


class MergeUnapplyResponse(BaseModel):
    primaryId: str
    secondaryId: str
    secondaryIds: list[str] = Field(default_factory=list)
    keptChanges: dict[str, dict[str, Any]]
    restoredAssociations: int
    conflicts: list[dict[str, Any]]


_snapshot = TypeAdapter(RecordSnapshot)


# --- GET /internal/v1/records/{objectType}/export ----------------------------------------------------------

MAX_EXPORT_PAGE = 20_000
MAX_EXPORT_IDS = 1_000


class ExportPage(BaseModel):
    """Live records with the asked properties, as rows in the order of `properties` (id first)."""

    objectTypeId: str
    objectType: str
    properties: list[str]
    results: list[list[str | None]]
    paging: Paging | None = None
    total: int | None = None

# --- POST /internal/v1/records/{objectType}/read-with-changes and .../find (the Salesforce sync) --------------


class ReadWithChangesRequest(BaseModel):
    ids: list[str] = Field(max_length=MAX_BULK_ROWS)
    properties: list[str] = Field(max_length=1_000)


class PropertyChange(TypedDict):
    timestamp: str | None
    sourceType: str | None
    sourceId: str | None


class RecordWithChanges(TypedDict):
    id: str
    properties: dict[str, str]
    changes: dict[str, PropertyChange]  # per property: its newest history entry
    archived: bool
    mergedInto: str | None


class ReadWithChangesResponse(BaseModel):
    results: list[RecordWithChanges]


class FindRequest(BaseModel):
    property: str
    values: list[str] = Field(max_length=MAX_BULK_ROWS)


class FindResponse(BaseModel):
    matches: dict[str, list[str]] = Field(description="value (lower-cased) -> ids of live records holding it")


# --- the client ---------------------------------------------------------------------------------------------


class RecordsClient(InternalClient):
    """records-svc as other services call it (internal routes and the public ones they need)."""

    service = "records-svc"

    def __init__(self, http: ServiceClient, *, retries: int = 5, parallel_calls: int = 1) -> None:
        super().__init__(http, retries=retries)
        self._parallel_calls = max(1, parallel_calls)

    # records

    async def bulk_upsert(self, account_id: int, object_type: str, options: BulkUpsertOptions,
                          rows: list[BulkRowInput], *, parallel_calls: int | None = None) -> BulkUpsertResponse:
        """One set-based write; a large one goes as parallel calls split by key (see `split_by_key`).

        The parts of a keyed write are keyed `<batchKey>.<part>`; the split depends only on the rows and the
        client's (or this call's) `parallel_calls`, so a caller that sends a batch again keeps both the same.
        """
        parts = split_by_key(rows, options.idProperty, parallel_calls or self._parallel_calls)
        if len(parts) == 1:
            return await self._bulk_upsert_call(account_id, object_type, options, rows)
        answers = await asyncio.gather(*(
            self._bulk_upsert_call(account_id, object_type, options.model_copy(update={
                "batchKey": f"{options.batchKey}.{index}" if options.batchKey else None}), part)
            for index, part in enumerate(parts)))
        return BulkUpsertResponse(results=[r for answer in answers for r in answer.results],
                                  created=sum(a.created for a in answers), updated=sum(a.updated for a in answers),
                                  unchanged=sum(a.unchanged for a in answers), failed=sum(a.failed for a in answers))

    async def _bulk_upsert_call(self, account_id: int, object_type: str, options: BulkUpsertOptions,
                                rows: list[BulkRowInput]) -> BulkUpsertResponse:
        body = orjson.dumps({**options.model_dump(mode="json"), "rows": rows})
        response = await self.call("POST", f"/internal/v1/records/{segment(object_type)}/bulk-upsert",
                                   account_id=account_id, what="bulk-upsert", body=body)
        return BulkUpsertResponse.model_validate_json(response.content)

    async def resolve(self, account_id: int, object_type: str, prop: str, values: list[str]) -> dict[str, list[str]]:
        """Normalised (lower-cased) value -> ids of the records holding it."""
        if not values:
            return {}
        response = await self.call("POST", f"/internal/v1/records/{segment(object_type)}/resolve",
                                   account_id=account_id, what="resolve",
                                   body=ResolveRequest(property=prop, values=values))
        matches = ResolveResponse.model_validate_json(response.content).matches
        return {key.lower(): ids for key, ids in matches.items()}

    async def snapshot(self, account_id: int, object_type: str, record_id: str | int) -> RecordSnapshot | None:
        """None when the record does not exist in the account."""
        response = await self.call("GET", f"/internal/v1/records/{segment(object_type)}/{segment(record_id)}/snapshot",
                                   account_id=account_id, what="snapshot", accept=frozenset({404}))
        if response.status_code == 404:
            return None
        return _snapshot.validate_json(response.content)

    async def export_page(self, account_id: int, object_type: str, properties: list[str], *, after: int = 0,
                          limit: int = 10_000, ids: list[int] | None = None, with_total: bool = False) -> ExportPage:
        """One page of the export (keyset-paged by id); an unknown type or property raises (404/400)."""
        params: dict[str, Any] = {"properties": ",".join(properties), "after": after, "limit": limit,
                                  "withTotal": "true" if with_total else "false"}
        if ids is not None:
            params["ids"] = ",".join(str(i) for i in ids)
        response = await self.call("GET", f"/internal/v1/records/{segment(object_type)}/export",
                                   account_id=account_id, what="export", params=params)
        return ExportPage.model_validate_json(response.content)

    async def read_with_changes(self, account_id: int, object_type: str, ids: list[str],
                                properties: list[str]) -> ReadWithChangesResponse:
        """Records with the asked properties and each one's last change (time, source); unknown ids are absent."""
        response = await self.call("POST", f"/internal/v1/records/{segment(object_type)}/read-with-changes",
                                   account_id=account_id, what="read with changes",
                                   body=ReadWithChangesRequest(ids=ids, properties=properties))
        return ReadWithChangesResponse.model_validate_json(response.content)

    async def find_by_property(self, account_id: int, object_type: str, prop: str,
                               values: list[str]) -> dict[str, list[str]]:
        """Lower-cased value -> ids of the live records holding it, for any property (an email, a Salesforce id)."""
        if not values:
            return {}
        response = await self.call("POST", f"/internal/v1/records/{segment(object_type)}/find",
                                   account_id=account_id, what="find", body=FindRequest(property=prop, values=values))
        return FindResponse.model_validate_json(response.content).matches

    # associations

    async def associate(self, account_id: int, inputs: list[AssociationInput], *, operation_id: str | None,
                        source_type: str = "IMPORT", batch_key: str | None = None) -> list[BulkAssociationResult]:
        if not inputs:
            return []
        body = orjson.dumps({"operationId": operation_id, "sourceType": source_type, "batchKey": batch_key,
                             "inputs": inputs})
        response = await self.call("POST", "/internal/v1/associations/bulk", account_id=account_id,
                                   what="associations/bulk", body=body)
        return BulkAssociationResponse.model_validate_json(response.content).results

    # operations

    async def journal_page(self, account_id: int, operation_id: str, *, after: int = 0,
                           limit: int = 1000) -> JournalPage:
        response = await self.call("GET", f"/internal/v1/operations/{segment(operation_id)}/journal",
                                   account_id=account_id, what="journal", params={"after": after, "limit": limit})
        return JournalPage.model_validate_json(response.content)

    async def journal(self, account_id: int, operation_id: str, *, page_size: int = 1000
                      ) -> AsyncIterator[JournalEntry]:
        """Every journal entry of an operation, in order, page after page to the end."""
        after = 0
        while True:
            page = await self.journal_page(account_id, operation_id, after=after, limit=page_size)
            for entry in page.results:
                yield entry
            if page.paging is None:
                return
            after = int(page.paging.next.after)

    async def undo(self, account_id: int, operation_id: str, *, source_type: str = "API") -> UndoReport:
        response = await self.call("POST", f"/internal/v1/operations/{segment(operation_id)}/undo",
                                   account_id=account_id, what="undo", body=UndoRequest(sourceType=source_type))
        return UndoReport.model_validate_json(response.content)

    # merges

    async def apply_merge(self, account_id: int, request: MergeApplyRequest) -> MergeApplyResponse:
        response = await self.call("POST", "/internal/v1/merges/apply", account_id=account_id, what="merge apply",
                                   body=request)
        return MergeApplyResponse.model_validate_json(response.content)

    async def unapply_merge(self, account_id: int, request: MergeUnapplyRequest) -> MergeUnapplyResponse:
        response = await self.call("POST", "/internal/v1/merges/unapply", account_id=account_id,
                                   what="merge unapply", body=request)
        return MergeUnapplyResponse.model_validate_json(response.content)

    # public routes (HubSpot's shapes)

    async def properties(self, account_id: int, object_type: str) -> dict[str, dict[str, Any]]:
        """name -> HubSpot property definition of every property of the type."""
        response = await self.call("GET", f"/crm/v3/properties/{segment(object_type)}", account_id=account_id,
                                   what="list properties")
        return {p["name"]: p for p in orjson.loads(response.content).get("results", [])}

    async def create_property(self, account_id: int, object_type: str, definition: dict[str, Any], *,
                              exist_ok: bool = False) -> dict[str, Any]:
        """The created property; with `exist_ok`, an existing one of that name answers `definition` back."""
        response = await self.call("POST", f"/crm/v3/properties/{segment(object_type)}", account_id=account_id,
                                   what="create property", body=definition,
                                   accept=frozenset({409}) if exist_ok else frozenset())
        if response.status_code == 409:
            return definition
        return orjson.loads(response.content)

    async def update_property(self, account_id: int, object_type: str, name: str,
                              changes: dict[str, Any]) -> dict[str, Any]:
        response = await self.call("PATCH", f"/crm/v3/properties/{segment(object_type)}/{segment(name)}",
                                   account_id=account_id, what="update property", body=changes)
        return orjson.loads(response.content)

    async def custom_schema(self, account_id: int, object_type: str) -> dict[str, Any] | None:
        """A custom object's schema (display and searchable properties); None for a standard type."""
        response = await self.call("GET", f"/crm-object-schemas/v3/schemas/{segment(object_type)}",
                                   account_id=account_id, what="object schema", accept=frozenset({404}))
        return None if response.status_code == 404 else orjson.loads(response.content)

    async def association_labels(self, account_id: int, from_type: str, to_type: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"/crm/v4/associations/{segment(from_type)}/{segment(to_type)}/labels",
                                   account_id=account_id, what="association labels")
        return orjson.loads(response.content).get("results", [])

    async def record_properties(self, account_id: int, object_type: str, ids: list[str], properties: list[str]
                                ) -> dict[str, dict[str, str]]:
        """record id -> the asked properties that have a value, through the public batch read (100 per call)."""
        out: dict[str, dict[str, str]] = {}
        for start in range(0, len(ids), 100):
            response = await self.call("POST", f"/crm/v3/objects/{segment(object_type)}/batch/read",
                                       account_id=account_id, what="batch read",
                                       body={"inputs": [{"id": i} for i in ids[start:start + 100]],
                                             "properties": properties})
            for item in orjson.loads(response.content).get("results", []):
                values = item.get("properties") or {}
                out[str(item["id"])] = {p: str(values[p]) for p in properties if values.get(p) not in (None, "")}
        return out

    async def find_by_values(self, account_id: int, object_type: str, prop: str, values: list[str]) -> dict[str, str]:
        """value -> record id for any property, through the public search (IN, 100 values per filter)."""
        out: dict[str, str] = {}
        for start in range(0, len(values), 100):
            chunk = values[start:start + 100]
            after: str | None = None
            while True:
                body: dict[str, Any] = {"filterGroups": [{"filters": [{"propertyName": prop, "operator": "IN",
                                                                       "values": chunk}]}],
                                        "properties": [prop], "limit": 100}
                if after:
                    body["after"] = after
                response = await self.call("POST", f"/crm/v3/objects/{segment(object_type)}/search",
                                           account_id=account_id, what="search", body=body)
                page = orjson.loads(response.content)
                for item in page.get("results", []):
                    value = (item.get("properties") or {}).get(prop)
                    if value:
                        out[value] = str(item["id"])
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return out


# Below this many rows per part, a second call costs more than it overlaps.
MIN_ROWS_PER_PARALLEL_CALL = 1_000


def split_by_key(rows: list[BulkRowInput], id_property: str | None, parts: int) -> list[list[BulkRowInput]]:
    """The rows of one bulk write in `parts` groups that can be written at the same time.

    Rows that address one record (same record id or unique key, compared as records-svc normalises
    them) always fall in the same group, so the groups never race for a record or its unique value and
    a later row still overrides an earlier one. Keyless rows create one record each and are dealt
    round-robin. The split depends only on the rows and `parts`, so a batch sent again splits alike.
    """
    parts = min(parts, len(rows) // MIN_ROWS_PER_PARALLEL_CALL)
    if parts <= 1:
        return [rows]
    groups: list[list[BulkRowInput]] = [[] for _ in range(parts)]
    for position, row in enumerate(rows):
        key = row.get("id")
        if key is None and id_property:
            key = row["properties"].get(id_property)  # type: ignore[assignment]
        if key is None or key == "":
            groups[position % parts].append(row)
        else:
            groups[zlib.crc32(str(key).strip().lower().encode()) % parts].append(row)
    return [group for group in groups if group]


__all__ = [
    "AssociationInput",
    "BulkAssociationRequest",
    "BulkAssociationResponse",
    "BulkAssociationResult",
    "BulkRowError",
    "BulkRowInput",
    "BulkRowResult",
    "BulkUpsertOptions",
    "BulkUpsertRequest",
    "BulkUpsertResponse",
    "ExportPage",
    "FindRequest",
    "FindResponse",
    "IncomingAssociation",
    "JournalEntry",
    "JournalPage",
    "MergeApplyRequest",
    "MergeApplyResponse",
    "MergeUnapplyRequest",
    "MergeUnapplyResponse",
    "OutgoingAssociation",
    "PropertyChange",
    "ReadWithChangesRequest",
    "ReadWithChangesResponse",
    "RecordSnapshot",
    "RecordWithChanges",
    "RecordsClient",
    "ResolveRequest",
    "ResolveResponse",
    "ServiceCallError",
    "UndoReport",
    "UndoRequest",
    "split_by_key",
]

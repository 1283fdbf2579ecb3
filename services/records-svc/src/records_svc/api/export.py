"""Internal export: every live record of an object type, only the asked properties, keyset-paged by id.

For services that read a whole object type (merge-svc's duplicate scans). Rows are arrays in the order of
`properties` rather than objects, so a page of 20,000 records stays small to send and quick to read.
"""

from __future__ import annotations

from typing import Annotated, Any

from crm_common.contracts.records import MAX_EXPORT_IDS, MAX_EXPORT_PAGE, ExportPage
from crm_common.errors import HubSpotError, error_responses
from crm_common.inputs import as_id
from crm_common.responses import FastJSONResponse
from fastapi import APIRouter, Query
from sqlalchemy import text

from records_svc.api.deps import Auth, Session
from records_svc.catalog import load_catalog, resolve_object_type

router = APIRouter(prefix="/internal/v1/records", tags=["Internal"])

MAX_EXPORT_PROPERTIES = 60


@router.get("/{objectType}/export", response_model=ExportPage, responses=error_responses(400, 401, 404),
            summary="Live records of an object type with the asked properties, keyset-paged by id")
async def export_records(
    objectType: str, auth: Auth, session: Session,
    properties: Annotated[str, Query(description="Comma-separated property names")],
    after: Annotated[int, Query(ge=0, description="Answer records with an id above this one")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT_PAGE)] = 10_000,
    ids: Annotated[str | None, Query(description=f"Only these record ids (comma-separated, at most "
                                                 f"{MAX_EXPORT_IDS}); archived and merged ones are left out")] = None,
    withTotal: Annotated[bool, Query(description="Also count every live record (for progress)")] = False,
) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await load_catalog(session, auth.account_id, object_type)
    names = [p.strip() for p in properties.split(",") if p.strip()]
    if not names or len(names) > MAX_EXPORT_PROPERTIES:
        raise HubSpotError(400, f"properties must name 1 to {MAX_EXPORT_PROPERTIES} properties")
    unknown = [n for n in names if n not in catalog.properties]
    if unknown:
        raise HubSpotError(400, f"Unknown properties on {object_type.name}: {', '.join(unknown)}",
                           errors=[{"message": f'Property "{n}" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                                    "in": "properties", "context": {"propertyName": [n]}} for n in unknown])
    id_filter = ""
    params: dict[str, Any] = {"a": auth.account_id, "t": object_type.id, "after": after, "limit": limit + 1,
                              **{f"p{i}": n for i, n in enumerate(names)}}
    if ids is not None:
        wanted = [found for v in ids.split(",") if (found := as_id(v)) is not None]
        if len(wanted) > MAX_EXPORT_IDS:
            raise HubSpotError(400, f"At most {MAX_EXPORT_IDS} ids per call")
        id_filter = "AND id = ANY(:ids)"
        params["ids"] = wanted
    columns = ", ".join(f"properties ->> :p{i}" for i in range(len(names)))
    rows = (await session.execute(text(
        f"SELECT id, {columns} FROM records WHERE account_id = :a AND object_type_id = :t AND NOT archived "
        f"AND id > :after {id_filter} ORDER BY id LIMIT :limit"), params)).all()
    results = [[str(row[0]), *row[1:]] for row in rows[:limit]]
    body: dict[str, Any] = {"objectTypeId": object_type.id, "objectType": object_type.name, "properties": names,
                            "results": results}
    if len(rows) > limit:
        body["paging"] = {"next": {"after": results[-1][0]}}
    if withTotal:
        body["total"] = (await session.execute(text(
            "SELECT count(*) FROM records WHERE account_id = :a AND object_type_id = :t AND NOT archived"),
            {"a": auth.account_id, "t": object_type.id})).scalar_one()
    return FastJSONResponse(body)

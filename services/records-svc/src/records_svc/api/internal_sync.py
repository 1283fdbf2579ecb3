"""Internal routes the Salesforce sync needs (never exposed by the gateway; see INTERNAL_API.md, "Sync").

Reading: records in bulk with each property's last change time and source, which the sync compares with
Salesforce's LastModifiedDate for two-way conflicts. Finding: live records by a property value (an
email, a Salesforce id property), which is how a Salesforce record finds its Corral record.
"""

from __future__ import annotations

from typing import Any

from crm_common.contracts.records import (
    FindRequest,
    FindResponse,
    ReadWithChangesRequest,
    ReadWithChangesResponse,
)
from crm_common.errors import HubSpotError, error_responses
from crm_common.responses import FastJSONResponse
from fastapi import APIRouter

from records_svc import repository, sync_repository
from records_svc.api.deps import Auth, Session
from records_svc.catalog import load_catalog, resolve_object_type
from records_svc.domain.properties import InvalidValue, normalize_value

router = APIRouter(prefix="/internal/v1", tags=["Internal"])


@router.post("/records/{objectType}/read-with-changes", response_model=ReadWithChangesResponse,
             responses=error_responses(400, 401, 404),
             summary="Records by id with the asked properties and each one's last change (time and source)")
async def read_with_changes(objectType: str, payload: ReadWithChangesRequest, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    ids = [int(i) for i in payload.ids if i.isdigit() and len(i) < 19]
    rows = await sync_repository.records_with_changes(session, auth.account_id, object_type.id, ids,
                                                      list(dict.fromkeys(payload.properties)))
    return FastJSONResponse({"results": [{
        "id": str(row["id"]), "properties": row["properties"],
        "changes": {name: {"timestamp": entry.get("timestamp"), "sourceType": entry.get("sourceType"),
                           "sourceId": entry.get("sourceId")} for name, entry in row["changes"].items()},
        "archived": row["archived"], "mergedInto": str(row["merged_into"]) if row["merged_into"] else None,
    } for row in rows]})


@router.post("/records/{objectType}/find", response_model=FindResponse, responses=error_responses(400, 401, 404),
             summary="Live records by the value of any property (unique ones through their claims)")
async def find_records(objectType: str, payload: FindRequest, auth: Auth, session: Session) -> Any:
    object_type = await resolve_object_type(session, auth.account_id, objectType)
    catalog = await load_catalog(session, auth.account_id, object_type)
    prop = catalog.properties.get(payload.property)
    if prop is None:
        raise HubSpotError(400, f'Property "{payload.property}" does not exist on {object_type.name}')
    normalized: list[str] = []
    for value in payload.values:
        try:
            text_value = normalize_value(prop, value)
        except InvalidValue:
            continue
        if text_value:
            normalized.append(text_value.lower())
    namespace = catalog.unique_namespaces().get(payload.property)
    if namespace:
        owners = await repository.resolve_unique_values(session, auth.account_id, object_type.id, namespace,
                                                        sorted(set(normalized)))
        live = await sync_repository.live_ids(session, auth.account_id, list(set(owners.values())))
        matches = {value: [str(owner)] for value, owner in owners.items() if owner in live}
    else:
        found = await sync_repository.live_records_by_value(session, auth.account_id, object_type.id, prop.name,
                                                            sorted(set(normalized)))
        matches = {value: [str(i) for i in ids] for value, ids in found.items()}
    return FastJSONResponse({"matches": matches})

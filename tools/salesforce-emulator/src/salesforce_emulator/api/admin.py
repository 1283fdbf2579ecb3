"""Test/admin API under /__emulator__ (only mounted when enabled): reset, seed, schema, clock, changes made
"in Salesforce" by another user, faults, limits and API usage."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from salesforce_emulator.api.common import OrgDep, json_response, read_json_object
from salesforce_emulator.auth import load_public_key
from salesforce_emulator.clock import format_datetime, parse_datetime
from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.faults import Fault
from salesforce_emulator.org import Org


class AdminRoute(APIRoute):
    """Admin bodies are free-form test input: a missing key or a wrong type is the caller's mistake (400),
    not an emulator failure (500)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except (KeyError, ValueError, TypeError, AttributeError) as error:
                raise SalesforceError(400, "INVALID_ADMIN_REQUEST", f"{type(error).__name__}: {error}") from None

        return handle


router = APIRouter(prefix="/__emulator__", route_class=AdminRoute)


def _actor(org: Org, spec: Any) -> str:
    """`asUser` may be a user id or a username; by default changes come from the admin user, i.e. not
    from the integration user the sync logs in as."""
    if not spec:
        return org.store.admin_user_id
    if isinstance(spec, str) and spec.startswith("005"):
        return spec
    user_id = org.user_id_for_username(str(spec))
    if user_id is None:
        raise SalesforceError(404, "NOT_FOUND", f"no user {spec}")
    return user_id


@router.post("/reset")
async def reset(org: OrgDep) -> Response:
    org.reset()
    return json_response({"reset": True})


@router.get("/state")
async def state(org: OrgDep) -> Response:
    return json_response({"now": format_datetime(org.clock.now()), "records": org.store.stats(),
                          "integrationUserId": org.store.integration_user_id,
                          "adminUserId": org.store.admin_user_id, "pageSize": org.page_size})


@router.post("/seed")
async def seed(request: Request, org: OrgDep) -> Response:
    """Bulk-load records; system fields (CreatedDate, SystemModstamp, ...) may be given to backdate rows."""
    body = await read_json_object(request)
    actor = _actor(org, body.get("asUser"))
    created = []
    for record in body.get("records", []):
        type_name = (record.get("attributes") or {}).get("type") or body.get("type")
        if not type_name:
            raise SalesforceError(400, "INVALID_TYPE", "each seeded record needs attributes.type")
        created.append(org.store.create(type_name, record, user_id=actor, allow_system_fields=True))
    return json_response({"ids": created})


@router.post("/objects")
async def define_object(request: Request, org: OrgDep) -> Response:
    spec = await read_json_object(request)
    try:
        definition = org.store.define_object(spec)
    except (KeyError, ValueError) as error:
        raise SalesforceError(400, "INVALID_FIELD", str(error)) from None
    return json_response({"name": definition.name, "keyPrefix": definition.key_prefix}, 201)


@router.post("/objects/{sobject}/fields")
async def define_field(sobject: str, request: Request, org: OrgDep) -> Response:
    spec = await read_json_object(request)
    try:
        definition = org.store.define_field(sobject, spec)
    except (KeyError, ValueError) as error:
        raise SalesforceError(400, "INVALID_FIELD", str(error)) from None
    return json_response({"name": definition.name, "fields": list(definition.fields)}, 201)


@router.post("/clock/advance")
async def advance_clock(request: Request, org: OrgDep) -> Response:
    body = await read_json_object(request)
    seconds = float(body.get("seconds", 0)) + 60 * float(body.get("minutes", 0)) + \
        3600 * float(body.get("hours", 0)) + 86400 * float(body.get("days", 0))
    return json_response({"now": format_datetime(org.clock.advance(seconds))})


@router.post("/clock/set")
async def set_clock(request: Request, org: OrgDep) -> Response:
    body = await read_json_object(request)
    return json_response({"now": format_datetime(org.clock.set_now(parse_datetime(body["now"])))})


@router.post("/records/{sobject}")
async def create_as_user(sobject: str, request: Request, org: OrgDep) -> Response:
    body = await read_json_object(request)
    record_id = org.store.create(sobject, body.get("fields", {}), user_id=_actor(org, body.get("asUser")))
    return json_response({"id": record_id}, 201)


@router.patch("/records/{sobject}/{record_id}")
async def update_as_user(sobject: str, record_id: str, request: Request, org: OrgDep) -> Response:
    """`systemOnly: true` simulates automation: only SystemModstamp moves, as with a formula recalculation."""
    body = await read_json_object(request)
    definition = org.store.require_object(sobject)
    record = org.store.update(definition, record_id, body.get("fields", {}), user_id=_actor(org, body.get("asUser")),
                              system_only=bool(body.get("systemOnly", False)), allow_system_fields=True)
    return json_response(record)


@router.delete("/records/{sobject}/{record_id}")
async def delete_as_user(sobject: str, record_id: str, request: Request, org: OrgDep) -> Response:
    definition = org.store.require_object(sobject)
    org.store.delete(definition, record_id, user_id=_actor(org, request.query_params.get("asUser")))
    return Response(status_code=204)


@router.post("/faults")
async def add_fault(request: Request, org: OrgDep) -> Response:
    body = await read_json_object(request)
    try:
        org.faults.add(Fault(kind=body["kind"], times=int(body.get("times", 1)), method=body.get("method"),
                             path_contains=body.get("pathContains"), latency_ms=int(body.get("latencyMs", 0)),
                             per_record=bool(body.get("perRecord", False))))
    except (KeyError, ValueError) as error:
        raise SalesforceError(400, "INVALID_FAULT", str(error)) from None
    return json_response({"pending": org.faults.pending()}, 201)


@router.delete("/faults")
async def clear_faults(org: OrgDep) -> Response:
    org.faults.clear()
    return Response(status_code=204)


@router.post("/validation-rules")
async def add_validation_rule(request: Request, org: OrgDep) -> Response:
    """The rule fails a write when `condition`, a SOQL WHERE expression over the new row, holds."""
    body = await read_json_object(request)
    org.store.add_validation_rule(body["object"], body.get("name", "rule"), body["condition"], body["message"],
                                  body.get("field"))
    return json_response({"rules": len(org.store.validation_rules)}, 201)


@router.post("/duplicate-rules")
async def add_duplicate_rule(request: Request, org: OrgDep) -> Response:
    """A blocking rule: writes matching a live row on every listed field fail with DUPLICATES_DETECTED
    unless the request sends `Sforce-Duplicate-Rule-Header: allowSave=true`."""
    body = await read_json_object(request)
    org.store.add_duplicate_rule(body["object"], body.get("name", f"{body['object']}_Duplicate_Rule"),
                                 list(body["fields"]))
    return json_response({"rules": len(org.store.duplicate_rules)}, 201)


@router.put("/limits")
async def set_limits(request: Request, org: OrgDep) -> Response:
    body = await read_json_object(request)
    if "DailyApiRequests" in body:
        org.usage.daily_max = int(body["DailyApiRequests"])
    if "pageSize" in body:
        org.page_size = int(body["pageSize"])
    if "replicationIdLimit" in body:
        org.store.limits.replication_id_limit = int(body["replicationIdLimit"])
    return json_response({"DailyApiRequests": org.usage.daily_max, "pageSize": org.page_size,
                          "replicationIdLimit": org.store.limits.replication_id_limit})


@router.get("/api-usage")
async def api_usage(org: OrgDep) -> Response:
    return json_response({"total": org.usage.total, "rolling24h": org.usage.used(),
                          "byToken": dict(org.usage.per_token), "byClient": dict(org.usage.per_client)})


@router.post("/tokens/expire")
async def expire_tokens(org: OrgDep) -> Response:
    org.connected_app.expire_all()
    return Response(status_code=204)


@router.post("/jwt-keys")
async def add_jwt_key(request: Request, org: OrgDep) -> Response:
    body = await read_json_object(request)
    org.connected_app.jwt_keys.append(load_public_key(body["certificate"].encode()))
    return json_response({"keys": len(org.connected_app.jwt_keys)}, 201)

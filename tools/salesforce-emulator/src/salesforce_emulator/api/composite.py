"""sObject Collections (one call for up to 200 rows) and the composite resource (up to 25 subrequests)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response

from salesforce_emulator.api.common import OrgDep, SessionDep, check_version, json_response, read_json_object
from salesforce_emulator.api.data import project_fields
from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.ids import to_18
from salesforce_emulator.org import Org
from salesforce_emulator.store import MultipleMatches

router = APIRouter(prefix="/services/data")

COLLECTION_LIMIT = 200
RETRIEVE_LIMIT = 2000
COMPOSITE_LIMIT = 25
COMPOSITE_HEAVY_LIMIT = 5
_HEAVY_SUBREQUEST = re.compile(r"/(query|queryAll)(\?|/|$)|/composite/sobjects")
SUBREQUEST_HEADER = "x-sf-emulator-subrequest"
_ROLLED_BACK = SalesforceError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                               "Record rolled back because not all records were valid and the request was using "
                               "AllOrNone header", [])


def _too_many(limit: int) -> SalesforceError:
    return SalesforceError(400, "EXCEEDED_ID_LIMIT",
                           f"record limit reached. cannot submit more than {limit} records into this call")


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _run_rows(org: Org, request: Request, items: list[Any], all_or_none: bool,
              operation: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply `operation` to each row in order; with allOrNone, any failure undoes every row."""
    results: list[dict[str, Any]] = []
    failed = False
    method, path = request.method, request.url.path
    with org.store.transaction() as log:
        savepoint = len(log)
        for item in items:
            try:
                if (injected := org.faults.take_record_fault(method, path)) is not None:
                    raise injected
                results.append(operation(item))
            except SalesforceError as error:
                failed = True
                results.append({"id": None, "success": False, "errors": [error.collection_item()]})
            except MultipleMatches as error:
                failed = True
                results.append({"id": None, "success": False, "errors": [{
                    "statusCode": "DUPLICATE_EXTERNAL_ID",
                    "message": f"The external ID value matches more than one record: {', '.join(error.record_ids)}",
                    "fields": []}]})
        if all_or_none and failed:
            org.store.rollback(log, savepoint)
            for result in results:
                if result["success"]:
                    result.update(id=None, success=False, errors=[_ROLLED_BACK.collection_item()])
                    result.pop("created", None)
    return results


def _records_payload(body: Any) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be an object with a records array")
    records = body["records"]
    if len(records) > COLLECTION_LIMIT:
        raise _too_many(COLLECTION_LIMIT)
    return records, _flag(body.get("allOrNone", False))


def _record_type(org: Org, record: Any) -> str:
    """The sObject a collection row names; every row operation asks this first, so it also checks the row's shape."""
    if not isinstance(record, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object", [])
    attributes = record.get("attributes") or {}
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    if not type_name or not isinstance(type_name, str):
        raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.", [])
    definition = org.store.describe(type_name)
    if definition is None:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.", [])
    return definition.name


@router.post("/v{version}/composite/sobjects")
async def collection_create(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    records, all_or_none = _records_payload(await read_json_object(request))

    def create(record: dict[str, Any]) -> dict[str, Any]:
        record_id = org.store.create(_record_type(org, record), record, user_id=session.user_id)
        return {"id": record_id, "success": True, "errors": []}

    return json_response(_run_rows(org, request, records, all_or_none, create))


@router.patch("/v{version}/composite/sobjects")
async def collection_update(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    records, all_or_none = _records_payload(await read_json_object(request))

    def update(record: dict[str, Any]) -> dict[str, Any]:
        definition = org.store.require_object(_record_type(org, record))
        raw_id = next((value for key, value in record.items() if key.lower() == "id"), None)
        if not raw_id:
            raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call", [])
        updated = org.store.update(definition, str(raw_id), record, user_id=session.user_id)
        return {"id": updated["Id"], "success": True, "errors": []}

    return json_response(_run_rows(org, request, records, all_or_none, update))


@router.patch("/v{version}/composite/sobjects/{sobject}/{field_name}")
async def collection_upsert(version: str, sobject: str, field_name: str, request: Request, org: OrgDep,
                            session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    external = definition.field(field_name)
    if external is None or not (external.external_id or external.name == "Id"):
        raise SalesforceError(400, "INVALID_FIELD",
                              f"Field name provided, {field_name} is not an External ID or indexed field for "
                              f"{definition.name}")
    records, all_or_none = _records_payload(await read_json_object(request))

    def upsert(record: dict[str, Any]) -> dict[str, Any]:
        if _record_type(org, record) != definition.name:
            raise SalesforceError(400, "INVALID_TYPE", "Upsert collections take one object type per call", [])
        value = next((val for key, val in record.items() if key.lower() == external.name.lower()), None)
        if value in (None, ""):
            raise SalesforceError(400, "MISSING_ARGUMENT", f"{external.name} not specified", [external.name])
        record_id, created = org.store.upsert(definition, external.name, str(value), record,
                                              user_id=session.user_id)
        return {"id": record_id, "success": True, "errors": [], "created": created}

    return json_response(_run_rows(org, request, records, all_or_none, upsert))


@router.delete("/v{version}/composite/sobjects")
async def collection_delete(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    raw_ids = [value for value in request.query_params.get("ids", "").split(",") if value]
    if not raw_ids:
        raise SalesforceError(400, "MISSING_ARGUMENT", "ids parameter is required")
    if len(raw_ids) > COLLECTION_LIMIT:
        raise _too_many(COLLECTION_LIMIT)
    all_or_none = _flag(request.query_params.get("allOrNone", "false"))

    def delete(raw_id: str) -> dict[str, Any]:
        try:
            record_id = to_18(raw_id)
        except ValueError:
            raise SalesforceError(400, "MALFORMED_ID", f"malformed id {raw_id}", []) from None
        definition = org.store.object_for_id(record_id)
        if definition is None or record_id not in org.store.records:
            raise SalesforceError(404, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
        org.store.delete(definition, record_id, user_id=session.user_id)
        return {"id": record_id, "success": True, "errors": []}

    return json_response(_run_rows(org, request, raw_ids, all_or_none, delete))


def _retrieve(org: Org, sobject: str, raw_ids: list[str], fields: list[str], version: str) -> list[Any]:
    definition = org.store.require_object(sobject)
    if not fields:
        raise SalesforceError(400, "MISSING_ARGUMENT", "fields parameter is required")
    field_list = ",".join(fields)
    results: list[Any] = []
    for raw_id in raw_ids:
        try:
            record = org.store.records.get(to_18(raw_id))
        except ValueError:
            record = None
        if record is None or record["IsDeleted"] or record["Id"][:3] != definition.key_prefix:
            results.append(None)
        else:
            results.append(project_fields(org, definition, record, field_list, version))
    return results


@router.get("/v{version}/composite/sobjects/{sobject}")
async def collection_retrieve(version: str, sobject: str, request: Request, org: OrgDep,
                              session: SessionDep) -> Response:
    check_version(version)
    raw_ids = [value for value in request.query_params.get("ids", "").split(",") if value]
    if len(raw_ids) > COLLECTION_LIMIT:
        raise _too_many(COLLECTION_LIMIT)
    fields = [value for value in request.query_params.get("fields", "").split(",") if value]
    return json_response(_retrieve(org, sobject, raw_ids, fields, version))


@router.post("/v{version}/composite/sobjects/{sobject}")
async def collection_retrieve_post(version: str, sobject: str, request: Request, org: OrgDep,
                                   session: SessionDep) -> Response:
    check_version(version)
    body = await read_json_object(request)
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The request body must be an object with ids and fields")
    raw_ids = _names(body, "ids")
    if len(raw_ids) > RETRIEVE_LIMIT:
        raise _too_many(RETRIEVE_LIMIT)
    fields = _names(body, "fields")
    return json_response(_retrieve(org, sobject, raw_ids, fields, version))


def _names(body: dict[str, Any], key: str) -> list[str]:
    values = body.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SalesforceError(400, "JSON_PARSER_ERROR", f"{key} must be a list of strings")
    return values


# -- composite ------------------------------------------------------------------------------------------------
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")


class _UnresolvedReference(Exception):
    pass


def _resolve_path(value: Any, path: str) -> Any:
    for step in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", path):
        key, index = step
        if key:
            if not isinstance(value, dict) or key not in value:
                raise _UnresolvedReference(key)
            value = value[key]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                raise _UnresolvedReference(index)
            value = value[int(index)]
    return value


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace @{ref.path} in strings anywhere in the subrequest with earlier subrequests' bodies."""
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            reference, path = match.group(1), match.group(2)
            if reference not in results:
                raise _UnresolvedReference(reference)
            return str(_resolve_path(results[reference], path))

        return _REFERENCE.sub(replace, value)
    if isinstance(value, dict):
        return {key: _substitute(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, results) for item in value]
    return value


_HALTED = [{"errorCode": "PROCESSING_HALTED",
            "message": "The transaction was rolled back since another operation in the same transaction failed."}]


@router.post("/v{version}/composite")
async def composite(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    body = await read_json_object(request)
    subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subrequests, list) or not subrequests:
        raise SalesforceError(400, "JSON_PARSER_ERROR", "compositeRequest is required")
    for subrequest in subrequests:
        if not isinstance(subrequest, dict) or not str(subrequest.get("url", "")).startswith("/services/data/v") \
                or not subrequest.get("method"):
            raise SalesforceError(400, "JSON_PARSER_ERROR",
                                  "Each subrequest needs a method and a url under /services/data/vXX.X")
    if len(subrequests) > COMPOSITE_LIMIT:
        raise SalesforceError(400, "LIMIT_EXCEEDED",
                              f"Composite request may only have up to {COMPOSITE_LIMIT} subrequests")
    heavy = [sub for sub in subrequests if isinstance(sub, dict) and _HEAVY_SUBREQUEST.search(sub.get("url", ""))]
    if len(heavy) > COMPOSITE_HEAVY_LIMIT:
        raise SalesforceError(400, "LIMIT_EXCEEDED",
                              f"Composite request may only have up to {COMPOSITE_HEAVY_LIMIT} query or sObject "
                              "Collections subrequests")
    all_or_none = _flag(body.get("allOrNone", False))
    bodies: dict[str, Any] = {}
    responses: list[dict[str, Any]] = []
    headers = {"authorization": request.headers.get("authorization", ""),
               SUBREQUEST_HEADER: org.subrequest_secret, "content-type": "application/json"}
    for forwarded in ("sforce-duplicate-rule-header", "sforce-call-options", "sforce-query-options"):
        if forwarded in request.headers:
            headers[forwarded] = request.headers[forwarded]
    transport = httpx.ASGITransport(app=request.app)
    failed = False
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:
        with org.store.transaction() as log:
            for subrequest in subrequests:
                reference_id = subrequest.get("referenceId")
                if failed and all_or_none:
                    responses.append({"body": _HALTED, "httpHeaders": {}, "httpStatusCode": 400,
                                      "referenceId": reference_id})
                    continue
                try:
                    url = _substitute(subrequest.get("url", ""), bodies)
                    payload = _substitute(subrequest.get("body"), bodies)
                except _UnresolvedReference as missing:
                    failed = True
                    responses.append({"body": [{"errorCode": "PROCESSING_HALTED", "message":
                                                f"Invalid reference specified. No value for {missing} found"}],
                                      "httpHeaders": {}, "httpStatusCode": 400, "referenceId": reference_id})
                    continue
                reply = await client.request(subrequest.get("method", "GET").upper(), url, headers=headers,
                                             json=payload if payload is not None else None)
                reply_body = reply.json() if reply.content else None
                if reply.status_code >= 400:
                    failed = True
                if reference_id and reply.status_code < 400:
                    bodies[reference_id] = reply_body
                reply_headers = {key: value for key, value in reply.headers.items() if key.lower() == "location"}
                responses.append({"body": reply_body, "httpHeaders": {name.title(): value for name, value in
                                                                      reply_headers.items()},
                                  "httpStatusCode": reply.status_code, "referenceId": reference_id})
            if failed and all_or_none:
                org.store.rollback(log)
                for response in responses:
                    if response["httpStatusCode"] < 400:
                        response.update(body=_HALTED, httpHeaders={}, httpStatusCode=400)
    return json_response({"compositeResponse": responses})



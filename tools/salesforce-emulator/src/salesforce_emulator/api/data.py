"""/services/data: versions, describe, sObject rows, SOQL, replication windows and limits."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from salesforce_emulator.api.common import OrgDep, SessionDep, check_version, json_response, read_json_object
from salesforce_emulator.clock import format_datetime, http_date, parse_datetime
from salesforce_emulator.errors import SalesforceError, not_found
from salesforce_emulator.ids import looks_like_id
from salesforce_emulator.org import Org
from salesforce_emulator.schema import SObjectDef
from salesforce_emulator.store import UPDATED_WINDOW_DAYS, MultipleMatches, build_projection

router = APIRouter(prefix="/services/data")

RELEASES = [("Winter '24", "59.0"), ("Spring '24", "60.0"), ("Summer '24", "61.0"), ("Winter '25", "62.0"),
            ("Spring '25", "63.0"), ("Summer '25", "64.0"), ("Winter '26", "65.0"), ("Spring '26", "66.0")]
RESOURCES = ("sobjects", "query", "queryAll", "limits", "composite")


@router.get("")
async def versions() -> Response:
    return json_response([{"label": label, "url": f"/services/data/v{version}", "version": version}
                          for label, version in RELEASES])


@router.get("/v{version}")
async def resources(version: str, session: SessionDep) -> Response:
    check_version(version)
    return json_response({name: f"/services/data/v{version}/{name}" for name in RESOURCES})


# -- metadata -------------------------------------------------------------------------------------------------
def _header_date(request: Request, name: str) -> datetime | None:
    """An RFC 1123 date header (`EEE, dd MMM yyyy HH:mm:ss z`); an unparseable one is ignored, as a cache
    validator should be."""
    header = request.headers.get(name)
    if not header:
        return None
    try:
        return parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None


def _if_modified_since(request: Request) -> datetime | None:
    return _header_date(request, "if-modified-since")


def _if_unmodified_since(request: Request) -> datetime | None:
    return _header_date(request, "if-unmodified-since")


@router.get("/v{version}/sobjects")
async def describe_global(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    since = _if_modified_since(request)
    if since is not None and org.store.schema_modified.replace(microsecond=0) <= since:
        return Response(status_code=304)
    return json_response({"encoding": "UTF-8", "maxBatchSize": 200,
                          "sobjects": [definition.global_entry(version) for definition in
                                       org.store.objects.values()]})


@router.get("/v{version}/sobjects/{sobject}")
async def sobject_basic_info(version: str, sobject: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    newest_first = reversed(org.store.by_type[definition.name].values())
    recent = [_row_output(record, definition, version, ["Id", "Name"] if definition.field("Name") else ["Id"])
              for record in islice((r for r in newest_first if not r["IsDeleted"]), 5)]
    return json_response({"objectDescribe": definition.global_entry(version), "recentItems": recent})


@router.get("/v{version}/sobjects/{sobject}/describe")
async def describe_sobject(version: str, sobject: str, request: Request, org: OrgDep,
                           session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    since = _if_modified_since(request)
    if since is not None and org.store.schema_modified.replace(microsecond=0) <= since:
        return Response(status_code=304)
    body = definition.global_entry(version)
    body.update({
        "childRelationships": org.store.child_relationships(definition),
        "fields": [field.describe() for field in definition.fields.values()],
        "recordTypeInfos": [{"active": True, "available": True, "defaultRecordTypeMapping": True,
                             "developerName": "Master", "master": True, "name": "Master",
                             "recordTypeId": "012000000000000AAA", "urls": {
                                 "layout": f"/services/data/v{version}/sobjects/{definition.name}/describe/layouts/"
                                           "012000000000000AAA"}}],
        "supportedScopes": [{"label": "All records", "name": "everything"}],
    })
    body["urls"] = {**definition.urls(version), "describe": f"/services/data/v{version}/sobjects/"
                                                            f"{definition.name}/describe"}
    return json_response(body)


# -- replication ----------------------------------------------------------------------------------------------
def _replication_window(org: Org, request: Request) -> tuple[datetime, datetime]:
    start_text = request.query_params.get("start")
    end_text = request.query_params.get("end")
    if not start_text or not end_text:
        raise SalesforceError(400, "MISSING_ARGUMENT", "start and end are required")
    try:
        start, end = parse_datetime(start_text), parse_datetime(end_text)
    except ValueError:
        raise SalesforceError(400, "INVALID_REPLICATION_DATE", "Unable to parse start or end date") from None
    now = org.clock.now()
    # Salesforce ignores the seconds of `start` (widening the window is always safe), and a window never
    # reaches past the present: a client that starts its next window at latestDateCovered misses nothing.
    start = start.replace(second=0, microsecond=0)
    end = min(end, now)
    if start > end:
        raise SalesforceError(400, "INVALID_REPLICATION_DATE", "EndDate can not be before StartDate")
    if start < now - timedelta(days=UPDATED_WINDOW_DAYS):
        raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                              f"startDate cannot be more than {UPDATED_WINDOW_DAYS} days ago")
    return start, end


def _replicable(org: Org, sobject: str) -> SObjectDef:
    definition = org.store.require_object(sobject)
    if not definition.replicateable:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{definition.name}' is not replicable")
    return definition


@router.get("/v{version}/sobjects/{sobject}/updated")
async def get_updated(version: str, sobject: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    definition = _replicable(org, sobject)
    start, end = _replication_window(org, request)
    record_ids = org.store.updated_ids(definition, start, end)
    if len(record_ids) > org.store.limits.replication_id_limit:
        raise SalesforceError(400, "EXCEEDED_ID_LIMIT",
                              f"Too many ids were requested: {len(record_ids)} exceeds the limit of "
                              f"{org.store.limits.replication_id_limit}; narrow the date range")
    return json_response({"ids": record_ids, "latestDateCovered": format_datetime(end)})


@router.get("/v{version}/sobjects/{sobject}/deleted")
async def get_deleted(version: str, sobject: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    definition = _replicable(org, sobject)
    start, end = _replication_window(org, request)
    entries = org.store.deleted_entries(definition, start, end)
    if len(entries) > org.store.limits.replication_id_limit:
        raise SalesforceError(400, "EXCEEDED_ID_LIMIT",
                              f"Too many ids were requested: {len(entries)} exceeds the limit of "
                              f"{org.store.limits.replication_id_limit}; narrow the date range")
    # After a purge this is the newest purged deletion: a client whose last sync is older must resync fully.
    earliest = org.store.purged_through or org.store.org_created
    return json_response({"deletedRecords": [{"id": entry.record_id, "deletedDate": entry.deleted_date}
                                             for entry in entries],
                          "earliestDateAvailable": format_datetime(earliest),
                          "latestDateCovered": format_datetime(end)})


# -- rows -----------------------------------------------------------------------------------------------------
def _row_output(record: dict[str, Any], definition: SObjectDef, version: str,
                fields: list[str] | None = None) -> dict[str, Any]:
    output: dict[str, Any] = {"attributes": {"type": definition.name,
                                             "url": f"/services/data/v{version}/sobjects/{definition.name}/"
                                                    f"{record['Id']}"}}
    for name in fields or definition.fields:
        output[name] = record.get(name)
    return output


def project_fields(org: Org, definition: SObjectDef, record: dict[str, Any], fields_param: str | None,
                   version: str) -> dict[str, Any]:
    """`?fields=` goes through the SOQL compiler so parent paths work and bad names fail as in SOQL."""
    if not fields_param:
        return _row_output(record, definition, version)
    soql = f"SELECT {fields_param} FROM {definition.name}"
    compiled = org.store.compile_query(soql)
    return build_projection(compiled, version, org.store.fetch)(record)


@router.post("/v{version}/sobjects/{sobject}")
async def create_row(version: str, sobject: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    payload = await read_json_object(request)
    record_id = org.store.create(definition.name, payload, user_id=session.user_id)
    return json_response({"id": record_id, "success": True, "errors": []}, 201,
                         {"Location": f"/services/data/v{version}/sobjects/{definition.name}/{record_id}"})


def _row_id_or_not_found(raw_id: str) -> None:
    if not looks_like_id(raw_id):
        raise SalesforceError(404, "NOT_FOUND",
                              f"Provided external ID field does not exist or is not accessible: {raw_id}")


@router.get("/v{version}/sobjects/{sobject}/{record_id}")
async def get_row(version: str, sobject: str, record_id: str, request: Request, org: OrgDep,
                  session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    _row_id_or_not_found(record_id)
    record = org.store.get_live(definition, record_id)
    last_modified = parse_datetime(record["LastModifiedDate"])
    headers = {"Last-Modified": http_date(last_modified)}
    etag = _etag(definition, record)
    if etag is not None:
        headers["ETag"] = etag
        if etag in _etag_list(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
    since = _if_modified_since(request)
    if since is not None and last_modified.replace(microsecond=0) <= since:
        return Response(status_code=304, headers=headers)
    body = project_fields(org, definition, record, request.query_params.get("fields"), version)
    return json_response(body, headers=headers)


def _etag(definition: SObjectDef, record: dict[str, Any]) -> str | None:
    """Salesforce sends ETags for Account rows only. The tag hashes the whole row, so two changes within
    the same millisecond (same SystemModstamp) still give different tags."""
    if definition.name != "Account":
        return None
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    return f'"{digest}--gzip"'


def _etag_list(header: str | None) -> list[str]:
    return [tag.strip() for tag in header.split(",")] if header else []


def _check_unmodified_since(request: Request, record: dict[str, Any], definition: SObjectDef) -> None:
    since = _if_unmodified_since(request)
    if since is not None and parse_datetime(record["LastModifiedDate"]).replace(microsecond=0) > since:
        raise SalesforceError(412, "PRECONDITION_FAILED",
                              "The requested resource has been modified since the If-Unmodified-Since date")
    wanted = _etag_list(request.headers.get("if-match"))
    etag = _etag(definition, record)
    if wanted and etag is not None and etag not in wanted and "*" not in wanted:
        raise SalesforceError(412, "PRECONDITION_FAILED", "The requested resource does not match the If-Match ETag")


@router.patch("/v{version}/sobjects/{sobject}/{record_id}")
async def update_row(version: str, sobject: str, record_id: str, request: Request, org: OrgDep,
                     session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    _row_id_or_not_found(record_id)
    payload = await read_json_object(request)
    _check_unmodified_since(request, org.store.get_live(definition, record_id), definition)
    org.store.update(definition, record_id, payload, user_id=session.user_id)
    return Response(status_code=204)


@router.delete("/v{version}/sobjects/{sobject}/{record_id}")
async def delete_row(version: str, sobject: str, record_id: str, request: Request, org: OrgDep,
                     session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    _row_id_or_not_found(record_id)
    _check_unmodified_since(request, org.store.get_live(definition, record_id), definition)
    org.store.delete(definition, record_id, user_id=session.user_id)
    return Response(status_code=204)


def _multiple_choices(error: MultipleMatches, version: str) -> Response:
    return json_response([f"/services/data/v{version}/sobjects/{error.sobject.name}/{record_id}"
                          for record_id in error.record_ids], 300)


@router.get("/v{version}/sobjects/{sobject}/{field_name}/{value}")
async def get_by_external_id(version: str, sobject: str, field_name: str, value: str, request: Request,
                             org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    matches = org.store.find_by_field(definition, field_name, value)
    if len(matches) > 1:
        return _multiple_choices(MultipleMatches(definition, matches), version)
    if not matches:
        raise not_found()
    record = org.store.records[matches[0]]
    return json_response(project_fields(org, definition, record, request.query_params.get("fields"), version))


@router.patch("/v{version}/sobjects/{sobject}/{field_name}/{value}")
async def upsert_by_external_id(version: str, sobject: str, field_name: str, value: str, request: Request,
                                org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    payload = await read_json_object(request)
    if request.query_params.get("updateOnly", "").lower() == "true" and \
            not org.store.find_by_field(definition, field_name, value):
        raise not_found()
    try:
        record_id, created = org.store.upsert(definition, field_name, value, payload, user_id=session.user_id)
    except MultipleMatches as error:
        return _multiple_choices(error, version)
    return json_response({"id": record_id, "success": True, "errors": [], "created": created},
                         201 if created else 200,
                         {"Location": f"/services/data/v{version}/sobjects/{definition.name}/{record_id}"}
                         if created else None)


@router.delete("/v{version}/sobjects/{sobject}/{field_name}/{value}")
async def delete_by_external_id(version: str, sobject: str, field_name: str, value: str, org: OrgDep,
                                session: SessionDep) -> Response:
    check_version(version)
    definition = org.store.require_object(sobject)
    matches = org.store.find_by_field(definition, field_name, value)
    if len(matches) > 1:
        return _multiple_choices(MultipleMatches(definition, matches), version)
    if not matches:
        raise not_found()
    org.store.delete(definition, matches[0], user_id=session.user_id)
    return Response(status_code=204)


# -- SOQL -----------------------------------------------------------------------------------------------------
def _page_size(org: Org, request: Request) -> int:
    page_size = org.page_size
    options = request.headers.get("sforce-query-options", "")
    for option in options.split(","):
        name, _, value = option.strip().partition("=")
        if name.lower() == "batchsize" and value.isdigit():
            # Salesforce treats batchSize as a hint between 200 and 2000; it never raises our own cap.
            page_size = min(page_size, max(200, min(2000, int(value))))
    return page_size


def _page(rows: list[dict[str, Any]], projection: Any, start: int, page_size: int, locator: str | None,
          resource: str, version: str) -> dict[str, Any]:
    chunk = rows[start: start + page_size]
    done = start + page_size >= len(rows)
    body: dict[str, Any] = {"totalSize": len(rows), "done": done}
    if not done:
        body["nextRecordsUrl"] = f"/services/data/v{version}/{resource}/{locator}-{start + page_size}"
    body["records"] = [projection(record) for record in chunk]
    return body


async def _run_query(version: str, request: Request, org: Org, include_deleted: bool) -> Response:
    check_version(version)
    soql = request.query_params.get("q")
    if soql is None:
        raise SalesforceError(400, "MALFORMED_QUERY", "A query string must be provided.")
    compiled, rows, projection = org.store.run_query(soql, include_deleted=include_deleted, version=version)
    if compiled.count_only:
        return json_response({"totalSize": len(rows), "done": True, "records": []})
    page_size = _page_size(org, request)
    locator = org.store.open_cursor(rows, projection, page_size) if len(rows) > page_size else None
    resource = "queryAll" if include_deleted else "query"
    return json_response(_page(rows, projection, 0, page_size, locator, resource, version))


async def _query_more(version: str, locator_and_offset: str, org: Org, resource: str) -> Response:
    check_version(version)
    locator, _, offset_text = locator_and_offset.rpartition("-")
    cursor = org.store.cursor(locator) if locator and offset_text.isdigit() else None
    if cursor is None or int(offset_text) > len(cursor.rows):
        raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return json_response(_page(cursor.rows, cursor.projection, int(offset_text), cursor.page_size, locator,
                               resource, version))


@router.get("/v{version}/query")
async def query(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    return await _run_query(version, request, org, include_deleted=False)


@router.get("/v{version}/queryAll")
async def query_all(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    return await _run_query(version, request, org, include_deleted=True)


@router.get("/v{version}/query/{locator}")
async def query_more(version: str, locator: str, org: OrgDep, session: SessionDep) -> Response:
    return await _query_more(version, locator, org, "query")


@router.get("/v{version}/queryAll/{locator}")
async def query_all_more(version: str, locator: str, org: OrgDep, session: SessionDep) -> Response:
    return await _query_more(version, locator, org, "queryAll")


# -- limits ---------------------------------------------------------------------------------------------------
@router.get("/v{version}/limits")
async def limits(version: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    used = org.usage.used()
    daily_max = org.usage.daily_max
    app_max = org.settings.per_app_api_requests or daily_max
    app_used = org.usage.per_client.get(org.connected_app.client_id, 0)
    record_count = sum(org.store.stats().values())
    data_storage_max = 5

    def static(maximum: int) -> dict[str, int]:
        return {"Max": maximum, "Remaining": maximum}

    return json_response({
        "ConcurrentAsyncGetReportInstances": static(200),
        "ConcurrentSyncReportRuns": static(20),
        "DailyApiRequests": {"Max": daily_max, "Remaining": max(daily_max - used, 0),
                             org.settings.app_name: {"Max": app_max, "Remaining": max(app_max - app_used, 0)}},
        "DailyAsyncApexExecutions": static(250000),
        "DailyBulkApiBatches": static(15000),
        "DailyBulkV2QueryFileStorageMB": static(976562),
        "DailyBulkV2QueryJobs": static(10000),
        "DataStorageMB": {"Max": data_storage_max,
                          "Remaining": max(data_storage_max - record_count * 2 // 1024, 0)},
        "FileStorageMB": static(20),
        "HourlyTimeBasedWorkflow": static(50),
        "SingleEmail": static(15),
        **org.store.limits.extra,
    })

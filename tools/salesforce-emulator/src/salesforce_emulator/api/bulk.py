"""Bulk API 2.0: query jobs and ingest jobs, CSV in and out.

Jobs run synchronously when they become runnable (query jobs on creation, ingest jobs on UploadComplete),
so a client polling for JobComplete sees it on its first poll; the wire shapes and the call count (every
HTTP call is one API request) are what a client depends on, not the latency.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from salesforce_emulator.api.common import OrgDep, SessionDep, check_version, json_response, read_json_object
from salesforce_emulator.clock import format_datetime
from salesforce_emulator.errors import SalesforceError
from salesforce_emulator.ids import to_18
from salesforce_emulator.org import Org
from salesforce_emulator.store import MultipleMatches

router = APIRouter(prefix="/services/data")

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
DEFAULT_MAX_RECORDS = 50_000
NULL_MARKER = "#N/A"


@dataclass
class BulkJob:
    id: str
    kind: str  # "ingest" or "query"
    operation: str
    sobject: str
    created_by: str
    created: str
    version: str
    column_delimiter: str = "COMMA"
    line_ending: str = "LF"
    external_id_field: str | None = None
    state: str = "Open"
    modstamp: str = ""
    error_message: str | None = None
    uploaded: list[str] = field(default_factory=list)
    # query jobs: the result table; ingest jobs: per-row outcomes
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    successes: list[tuple[str, bool, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, str, list[str]]] = field(default_factory=list)
    input_columns: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.sobject, "createdById": self.created_by,
            "createdDate": self.created, "systemModstamp": self.modstamp or self.created, "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(self.version),
            "jobType": "V2Ingest" if self.kind == "ingest" else "V2Query", "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter, "retries": 0, "totalProcessingTime": 0,
        }
        if self.kind == "ingest":
            body["externalIdFieldName"] = self.external_id_field
            body["contentUrl"] = f"services/data/v{self.version}/jobs/ingest/{self.id}/batches"
            body["numberRecordsProcessed"] = len(self.successes) + len(self.failures)
            body["numberRecordsFailed"] = len(self.failures)
        else:
            body["numberRecordsProcessed"] = len(self.rows)
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


def _jobs(org: Org) -> dict[str, BulkJob]:
    return org.bulk_jobs


def _job(org: Org, job_id: str, kind: str) -> BulkJob:
    job = _jobs(org).get(job_id)
    if job is None or job.kind != kind:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
    return job


def _csv_text(job: BulkJob, header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=DELIMITERS[job.column_delimiter],
                        lineterminator=LINE_ENDINGS[job.line_ending], quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _csv_response(text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text.encode(), media_type="text/csv", headers=headers)


def _options(body: dict[str, Any]) -> tuple[str, str]:
    delimiter = body.get("columnDelimiter", "COMMA")
    line_ending = body.get("lineEnding", "LF")
    if not isinstance(delimiter, str) or not isinstance(line_ending, str) or delimiter not in DELIMITERS \
            or line_ending not in LINE_ENDINGS:
        raise SalesforceError(400, "INVALIDJOB", "InvalidJob : invalid columnDelimiter or lineEnding")
    return delimiter, line_ending


# -- query jobs -----------------------------------------------------------------------------------------------
@router.post("/v{version}/jobs/query")
async def create_query_job(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    body = await read_json_object(request)
    operation = body.get("operation", "query")
    if not isinstance(operation, str) or operation not in QUERY_OPERATIONS or not isinstance(body.get("query"), str) \
            or not body["query"]:
        raise SalesforceError(400, "INVALIDJOB", "InvalidJob : a query job needs operation query|queryAll and query")
    delimiter, line_ending = _options(body)
    compiled, matched, _ = org.store.run_query(body["query"], include_deleted=operation == "queryAll",
                                               version=version)
    if compiled.children or compiled.is_aggregate:
        raise SalesforceError(400, "API_ERROR", "Bulk API 2.0 does not support relationship subqueries or "
                                                "aggregate functions")
    now = format_datetime(org.clock.now())
    job = BulkJob(org.store.id_generator.next_id("750"), "query", operation, compiled.sobject.name,
                  session.user_id, now, version, delimiter, line_ending, state="JobComplete", modstamp=now)
    job.columns = [resolved.path.text for resolved in compiled.selected]
    getters = [resolved.getter for resolved in compiled.selected]
    job.rows = [[_csv_cell(get(record)) for get in getters] for record in matched]
    _jobs(org)[job.id] = job
    return json_response({**job.info(), "state": "UploadComplete"})


@router.get("/v{version}/jobs/query")
async def list_query_jobs(version: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    return json_response({"done": True, "records": [job.info() for job in _jobs(org).values()
                                                    if job.kind == "query"], "nextRecordsUrl": None})


@router.get("/v{version}/jobs/query/{job_id}")
async def get_query_job(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    return json_response(_job(org, job_id, "query").info())


@router.get("/v{version}/jobs/query/{job_id}/results")
async def query_job_results(version: str, job_id: str, request: Request, org: OrgDep,
                            session: SessionDep) -> Response:
    check_version(version)
    job = _job(org, job_id, "query")
    max_records = int(request.query_params.get("maxRecords") or DEFAULT_MAX_RECORDS)
    locator = request.query_params.get("locator")
    start = 0
    if locator:
        try:
            start = int(locator)
        except ValueError:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid locator") from None
    chunk = job.rows[start: start + max_records]
    following = start + max_records
    headers = {"Sforce-Locator": str(following) if following < len(job.rows) else "null",
               "Sforce-NumberOfRecords": str(len(chunk))}
    return _csv_response(_csv_text(job, job.columns, chunk), headers)


# -- ingest jobs ----------------------------------------------------------------------------------------------
@router.post("/v{version}/jobs/ingest")
async def create_ingest_job(version: str, request: Request, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    body = await read_json_object(request)
    operation = body.get("operation")
    sobject = org.store.describe(str(body.get("object", "")))
    if not isinstance(operation, str) or operation not in INGEST_OPERATIONS or sobject is None:
        raise SalesforceError(400, "INVALIDJOB", "InvalidJob : an ingest job needs a known object and an operation "
                                                 f"among {', '.join(INGEST_OPERATIONS)}")
    if not isinstance(body.get("externalIdFieldName") or "", str):
        raise SalesforceError(400, "INVALIDJOB", "InvalidJob : externalIdFieldName must be a field name")
    if operation == "upsert" and not body.get("externalIdFieldName"):
        raise SalesforceError(400, "INVALIDJOB", "InvalidJob : External ID was blank for " + sobject.name)
    delimiter, line_ending = _options(body)
    now = format_datetime(org.clock.now())
    job = BulkJob(org.store.id_generator.next_id("750"), "ingest", operation, sobject.name, session.user_id, now,
                  version, delimiter, line_ending, body.get("externalIdFieldName"))
    _jobs(org)[job.id] = job
    return json_response(job.info())


@router.get("/v{version}/jobs/ingest")
async def list_ingest_jobs(version: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    return json_response({"done": True, "records": [job.info() for job in _jobs(org).values()
                                                    if job.kind == "ingest"], "nextRecordsUrl": None})


@router.get("/v{version}/jobs/ingest/{job_id}")
async def get_ingest_job(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    return json_response(_job(org, job_id, "ingest").info())


@router.put("/v{version}/jobs/ingest/{job_id}/batches")
async def upload_ingest_data(version: str, job_id: str, request: Request, org: OrgDep,
                             session: SessionDep) -> Response:
    check_version(version)
    job = _job(org, job_id, "ingest")
    if job.state != "Open":
        raise SalesforceError(409, "INVALIDJOB", f"InvalidJob : Job {job.id} is not open for uploads")
    job.uploaded.append((await request.body()).decode("utf-8-sig"))
    return Response(status_code=201)


@router.patch("/v{version}/jobs/ingest/{job_id}")
async def change_ingest_job(version: str, job_id: str, request: Request, org: OrgDep,
                            session: SessionDep) -> Response:
    check_version(version)
    return json_response(_change_state(org, _job(org, job_id, "ingest"), (await read_json_object(request)).get("state"),
                                       session.user_id))


@router.patch("/v{version}/jobs/query/{job_id}")
async def change_query_job(version: str, job_id: str, request: Request, org: OrgDep,
                           session: SessionDep) -> Response:
    check_version(version)
    return json_response(_change_state(org, _job(org, job_id, "query"), (await read_json_object(request)).get("state"),
                                       session.user_id))


def _change_state(org: Org, job: BulkJob, state: Any, user_id: str) -> dict[str, Any]:
    if state == "Aborted":
        if job.state not in ("JobComplete", "Failed"):
            job.state = "Aborted"
    elif state == "UploadComplete" and job.kind == "ingest" and job.state == "Open":
        _run_ingest(org, job, user_id)
    else:
        raise SalesforceError(400, "INVALIDJOB", f"InvalidJob : cannot move job from {job.state} to {state}")
    job.modstamp = format_datetime(org.clock.now())
    return job.info()


def _run_ingest(org: Org, job: BulkJob, user_id: str) -> None:
    """Apply every uploaded row as its own operation (Bulk API has no allOrNone) and keep the outcomes."""
    sobject = org.store.require_object(job.sobject)
    delimiter = DELIMITERS[job.column_delimiter]
    for text in job.uploaded:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            continue
        job.input_columns = header
        for cells in reader:
            if not any(cells):
                continue
            # Empty cells leave a field alone; #N/A sets it to null, as in Salesforce.
            payload = {name: (None if value == NULL_MARKER else value)
                       for name, value in zip(header, cells, strict=False) if value != ""}
            record_id = next((str(value) for name, value in payload.items() if name.lower() == "id" and value), "")
            try:
                record_id, created = _apply_row(org, job, sobject, payload, record_id, user_id)
                job.successes.append((record_id, created, cells))
            except SalesforceError as error:
                fields = ",".join(error.fields or [])
                job.failures.append((record_id, f"{error.error_code}:{error.message}:{fields} --", cells))
            except MultipleMatches as error:
                message = (f"DUPLICATE_EXTERNAL_ID:more than one record found for external id field: "
                           f"{error.record_ids}:{job.external_id_field} --")
                job.failures.append((record_id, message, cells))
    job.uploaded.clear()
    job.state = "JobComplete"


def _apply_row(org: Org, job: BulkJob, sobject: Any, payload: dict[str, Any], record_id: str,
               user_id: str) -> tuple[str, bool]:
    store = org.store
    if job.operation == "insert":
        return store.create(sobject.name, payload, user_id=user_id), True
    if job.operation == "upsert":
        external = job.external_id_field or "Id"
        value = next((val for name, val in payload.items() if name.lower() == external.lower()), None)
        if not value:
            raise SalesforceError(400, "MISSING_ARGUMENT", f"{external} not specified", [external])
        return store.upsert(sobject, external, str(value), payload, user_id=user_id)
    if not record_id:
        raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified", ["Id"])
    if job.operation == "update":
        return store.update(sobject, record_id, payload, user_id=user_id)["Id"], False
    store.delete(sobject, record_id, user_id=user_id)
    canonical = to_18(record_id)
    if job.operation == "hardDelete":
        store.hard_delete(canonical)
    return canonical, False


@router.get("/v{version}/jobs/ingest/{job_id}/successfulResults")
async def successful_results(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    job = _job(org, job_id, "ingest")
    rows = [[record_id, _csv_cell(created), *cells] for record_id, created, cells in job.successes]
    return _csv_response(_csv_text(job, ["sf__Id", "sf__Created", *job.input_columns], rows))


@router.get("/v{version}/jobs/ingest/{job_id}/failedResults")
async def failed_results(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    job = _job(org, job_id, "ingest")
    rows = [[record_id, error, *cells] for record_id, error, cells in job.failures]
    return _csv_response(_csv_text(job, ["sf__Id", "sf__Error", *job.input_columns], rows))


@router.get("/v{version}/jobs/ingest/{job_id}/unprocessedrecords")
async def unprocessed_records(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    job = _job(org, job_id, "ingest")
    rows: list[list[Any]] = []
    for text in job.uploaded:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[job.column_delimiter])
        next(reader, None)
        rows.extend(reader)
    return _csv_response(_csv_text(job, job.input_columns, rows))


@router.delete("/v{version}/jobs/ingest/{job_id}")
async def delete_ingest_job(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    _jobs(org).pop(_job(org, job_id, "ingest").id)
    return Response(status_code=204)


@router.delete("/v{version}/jobs/query/{job_id}")
async def delete_query_job(version: str, job_id: str, org: OrgDep, session: SessionDep) -> Response:
    check_version(version)
    _jobs(org).pop(_job(org, job_id, "query").id)
    return Response(status_code=204)

"""A thin async client for the parts of Salesforce's REST API the sync uses.

Why our own (see the reference notes, salesforce-api.md section 2): simple-salesforce is synchronous
and hard-codes https hosts; aiosalesforce accepts only `*.my.salesforce.com` hosts, is stalled, and has
neither describe, getUpdated/getDeleted nor sObject Collections. This one is plain httpx with an
injectable transport, so tests point it at the emulator in-process or on a free port.

What it adds to HTTP:
- one transparent re-login when a call is refused with 401 INVALID_SESSION_ID (sessions have no
  announced lifetime), shared by concurrent callers;
- every data call reported to a ledger (`on_call`), which is how sync-svc counts its own API budget;
  `Sforce-Limit-Info` and the `Date` header (the org's clock) remembered from each answer;
- backoff and retry for 5xx, UNABLE_TO_LOCK_ROW and timeouts, but never a retry that could write twice
  (a create whose answer was lost is left to the caller's recorded intents) and never once the ledger
  says the budget is too spent for automatic retries;
- collections (200 rows per write, 2,000 ids per retrieve) packed five to a composite call, so 10,000
  changed rows cost about 10 calls instead of 50.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import structlog
from crm_common.timestamps import format_timestamp

from sync_svc.domain.values import parse_datetime
from sync_svc.salesforce import auth
from sync_svc.salesforce.errors import (
    LIMIT_CODES,
    ApiLimitExceeded,
    SalesforceApiError,
    SalesforceErrorItem,
    SalesforceUnavailable,
    SessionRejected,
    parse_error_list,
)

log = structlog.get_logger(__name__)

COLLECTION_LIMIT = 200
RETRIEVE_LIMIT = 2000
COMPOSITE_LIMIT = 25
# Queries and sObject Collections count against a tighter cap inside one composite request.
COMPOSITE_HEAVY_LIMIT = 5
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
_PER_APP = re.compile(r"per-app-api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class LimitInfo:
    """`Sforce-Limit-Info: api-usage=51/100000[;per-app-api-usage=17/250(appName=x)]`."""

    used: int
    max: int
    per_app_used: int | None = None
    per_app_max: int | None = None


def parse_limit_info(header: str | None) -> LimitInfo | None:
    if not header:
        return None
    found = _LIMIT_INFO.search(header)
    if not found:
        return None
    per_app = _PER_APP.search(header)
    return LimitInfo(int(found.group(1)), int(found.group(2)),
                     int(per_app.group(1)) if per_app else None, int(per_app.group(2)) if per_app else None)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Exponential with full jitter, so replicas retrying one org do not fall into step."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))


@dataclass
class SubRequest:
    """One request as it would travel inside a composite call; `path` is relative to the versioned base."""

    method: str
    path: str
    body: Any = None
    # A create may not be sent again when its answer is lost: it may have happened.
    idempotent: bool = True

    @property
    def heavy(self) -> bool:
        return self.path.startswith(("/query", "/queryAll", "/composite/sobjects"))


@dataclass
class SubResponse:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def errors(self) -> list[SalesforceErrorItem]:
        return [] if self.ok else parse_error_list(self.body)

    @property
    def transient(self) -> bool:
        return not self.ok and (self.status >= 500 or any(e.transient for e in self.errors))

    def retryable(self, idempotent: bool) -> bool:
        """503 and a lock timeout mean nothing ran; other transient failures only if running twice is harmless."""
        if self.ok:
            return False
        if self.status == 503 or any(e.code == "UNABLE_TO_LOCK_ROW" for e in self.errors):
            return True
        return idempotent and self.transient


@dataclass
class RowResult:
    """One collection row's outcome, in the order the rows were sent."""

    id: str | None
    success: bool
    errors: list[SalesforceErrorItem] = field(default_factory=list)
    created: bool | None = None

    @property
    def transient(self) -> bool:
        return not self.success and any(e.transient for e in self.errors)

    @classmethod
    def parse(cls, raw: Any) -> RowResult:
        if not isinstance(raw, dict):
            return cls(None, False, [SalesforceErrorItem("UNKNOWN_EXCEPTION", f"unexpected row result {raw!r}")])
        errors = [SalesforceErrorItem.parse(e) for e in raw.get("errors") or []]
        return cls(raw.get("id"), bool(raw.get("success")), errors, raw.get("created"))

    @classmethod
    def failed(cls, errors: list[SalesforceErrorItem]) -> RowResult:
        return cls(None, False, list(errors))


@dataclass
class RowWrite:
    """Rows for one collection operation: `create` (rows carry attributes.type), `update` (rows carry Id)
    or `upsert` on an external id field of one object."""

    kind: str
    rows: list[dict[str, Any]]
    sobject: str | None = None
    external_id_field: str | None = None


@dataclass
class QueryPage:
    records: list[dict[str, Any]]
    done: bool
    next_records_url: str | None
    total_size: int

    @classmethod
    def parse(cls, body: Any) -> QueryPage:
        if not isinstance(body, dict):
            raise SalesforceApiError(200, [SalesforceErrorItem("UNKNOWN_EXCEPTION", "unexpected query answer")])
        return cls(list(body.get("records") or []), bool(body.get("done", True)), body.get("nextRecordsUrl"),
                   int(body.get("totalSize") or 0))


CallHook = Callable[[int], Awaitable[None]]
SessionHook = Callable[[auth.SalesforceSession], Awaitable[None]]


class SalesforceClient:
    """One org, one set of credentials. Cheap to build per sync cycle; the httpx client is shared."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        credentials: auth.Credentials,
        api_version: str,
        session: auth.SalesforceSession | None = None,
        on_call: CallHook | None = None,
        on_session: SessionHook | None = None,
        may_retry: Callable[[], bool] | None = None,
        retry: RetryPolicy | None = None,
        call_options_client: str = "Corral",
        max_concurrent_calls: int = 4,
    ) -> None:
        self._http = http
        self.credentials = credentials
        self.api_version = api_version
        self.session = session
        self._on_call = on_call
        self._on_session = on_session
        self._may_retry = may_retry or (lambda: True)
        self._retry = retry or RetryPolicy()
        self._call_options = f"client={call_options_client}"
        self._login_lock = asyncio.Lock()
        self._concurrency = asyncio.Semaphore(max(1, max_concurrent_calls))
        # Data calls this client made (what `sync/run` reports); Salesforce counts each one.
        self.calls = 0
        self.limit_info: LimitInfo | None = None
        # The org's clock as of the latest answer (its Date header), and how far it is ahead of ours.
        self.server_time: datetime | None = None
        self.clock_offset: float | None = None

    # -- sessions --------------------------------------------------------------------------------------------

    async def login(self) -> auth.SalesforceSession:
        session = await auth.login(self._http, self.credentials)
        self.session = session
        if self._on_session is not None:
            await self._on_session(session)
        return session

    async def _current_session(self) -> auth.SalesforceSession:
        if self.session is None:
            async with self._login_lock:
                if self.session is None:
                    await self.login()
        assert self.session is not None
        return self.session

    async def _relogin(self, rejected: auth.SalesforceSession) -> None:
        async with self._login_lock:
            # Another caller may already have replaced the rejected session.
            if self.session is None or self.session.access_token == rejected.access_token:
                await self.login()

    # -- raw calls -------------------------------------------------------------------------------------------

    def data_url(self, path: str) -> str:
        """`path` relative to /services/data/vXX.X, or an absolute `/services/data/...` path Salesforce gave us."""
        session = self.session
        assert session is not None
        if path.startswith("/services/"):
            return f"{session.instance_url}{path}"
        return f"{session.instance_url}/services/data/v{self.api_version}{path}"

    async def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                      headers: dict[str, str] | None = None, idempotent: bool | None = None,
                      accept_statuses: Sequence[int] = ()) -> httpx.Response:
        """One data API call with re-login, accounting and retries; raises for error statuses."""
        if idempotent is None:
            idempotent = method in ("GET", "PATCH", "DELETE", "HEAD")
        relogged = False
        attempt = 0
        content = orjson.dumps(json) if json is not None else None
        while True:
            session = await self._current_session()
            request_headers = {"Authorization": f"Bearer {session.access_token}", "Accept": "application/json",
                               "Sforce-Call-Options": self._call_options, **(headers or {})}
            if content is not None:
                request_headers["Content-Type"] = "application/json"
            try:
                async with self._concurrency:
                    response = await self._http.request(method, self.data_url(path), content=content,
                                                        params=params, headers=request_headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached Salesforce: safe to send again whatever the call is.
                if await self._backoff(attempt):
                    attempt += 1
                    continue
                raise SalesforceUnavailable(f"Salesforce could not be reached ({exc.__class__.__name__})") from None
            except httpx.HTTPError as exc:
                # The call may have arrived and run: it counts, and only idempotent calls are sent again.
                await self._count()
                if idempotent and await self._backoff(attempt):
                    attempt += 1
                    continue
                raise SalesforceUnavailable(f"Salesforce did not answer ({exc.__class__.__name__})") from None
            await self._count(response)
            status = response.status_code
            if status < 400 or status in accept_statuses:
                return response
            errors = parse_error_list(_json_or_text(response))
            codes = {e.code for e in errors}
            if status == 401 and "INVALID_SESSION_ID" in codes:
                if relogged:
                    raise SessionRejected("Salesforce refused a session it had just issued "
                                          "(INVALID_SESSION_ID after logging in again)")
                relogged = True
                await self._relogin(session)
                continue
            if status == 403 and codes & LIMIT_CODES:
                raise ApiLimitExceeded(status, errors)
            error = SalesforceApiError(status, errors)
            # 503 and a lock timeout mean nothing ran; other transient failures are sent again only when
            # running twice is harmless.
            retryable = status == 503 or "UNABLE_TO_LOCK_ROW" in codes or (idempotent and error.transient)
            if retryable and await self._backoff(attempt):
                attempt += 1
                continue
            if error.transient:
                raise SalesforceUnavailable(str(error), status=status)
            raise error

    async def _backoff(self, attempt: int) -> bool:
        if attempt + 1 >= self._retry.attempts or not self._may_retry():
            return False
        await asyncio.sleep(self._retry.delay(attempt))
        return True

    async def _count(self, response: httpx.Response | None = None) -> None:
        self.calls += 1
        if response is not None:
            info = parse_limit_info(response.headers.get("sforce-limit-info"))
            if info is not None:
                self.limit_info = info
            date = response.headers.get("date")
            if date:
                try:
                    self.server_time = parsedate_to_datetime(date).astimezone(UTC)
                    # The header has whole seconds: half a second is the best guess of the fraction.
                    self.clock_offset = (self.server_time - datetime.now(UTC)).total_seconds() + 0.5
                except (TypeError, ValueError):
                    pass
        if self._on_call is not None:
            await self._on_call(1)

    async def get_json(self, path: str, *, params: dict[str, Any] | None = None,
                       headers: dict[str, str] | None = None) -> Any:
        response = await self.request("GET", path, params=params, headers=headers)
        return response.json()

    # -- discovery -------------------------------------------------------------------------------------------

    async def versions(self) -> list[str]:
        """API versions the org offers (`GET /services/data`, not counted against the allowance)."""
        session = await self._current_session()
        try:
            response = await self._http.get(f"{session.instance_url}/services/data",
                                            headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise SalesforceUnavailable(f"Salesforce could not be reached ({exc.__class__.__name__})") from None
        if response.status_code != 200 or not isinstance(response.json(), list):
            raise SalesforceUnavailable(f"GET /services/data answered {response.status_code}",
                                        status=response.status_code)
        return [str(v["version"]) for v in response.json() if isinstance(v, dict) and "version" in v]

    async def userinfo(self) -> dict[str, Any]:
        """The session's user (OpenID Connect user info; not a data call)."""
        session = await self._current_session()
        for _ in range(2):
            response = await self._http.get(f"{session.instance_url}/services/oauth2/userinfo",
                                            headers={"Authorization": f"Bearer {session.access_token}"})
            if response.status_code == 200:
                return response.json()
            if response.status_code in (401, 403):
                await self._relogin(session)
                session = await self._current_session()
                continue
            break
        return {}

    async def limits(self) -> dict[str, Any]:
        return await self.get_json("/limits")

    async def describe(self, sobject: str, *, if_modified_since: datetime | None = None) -> dict[str, Any] | None:
        """The object's describe document; None when unchanged since `if_modified_since` (304)."""
        headers = {"If-Modified-Since": _http_date(if_modified_since)} if if_modified_since else None
        response = await self.request("GET", f"/sobjects/{quote(sobject, safe='')}/describe", headers=headers,
                                      accept_statuses=(304,))
        if response.status_code == 304:
            return None
        return response.json()

    # -- queries ---------------------------------------------------------------------------------------------

    async def query(self, soql: str, *, include_deleted: bool = False) -> QueryPage:
        resource = "/queryAll" if include_deleted else "/query"
        return QueryPage.parse(await self.get_json(resource, params={"q": soql}))

    async def query_more(self, next_records_url: str) -> QueryPage:
        return QueryPage.parse(await self.get_json(next_records_url))

    async def query_pages(self, soql: str, *, first: QueryPage | None = None) -> AsyncIterator[QueryPage]:
        """Every page of a query, following nextRecordsUrl (one call per page)."""
        page = first or await self.query(soql)
        yield page
        while not page.done and page.next_records_url:
            page = await self.query_more(page.next_records_url)
            yield page

    async def query_first_pages(self, soqls: Sequence[str]) -> list[QueryPage | SalesforceApiError]:
        """The first page of several queries, packed five to a composite call."""
        subrequests = [SubRequest("GET", f"/query?q={quote(soql, safe='')}") for soql in soqls]
        out: list[QueryPage | SalesforceApiError] = []
        for response in await self.send(subrequests):
            out.append(QueryPage.parse(response.body) if response.ok
                       else SalesforceApiError(response.status, response.errors))
        return out

    # -- replication -----------------------------------------------------------------------------------------

    async def updated(self, sobject: str, start: datetime, end: datetime) -> dict[str, Any]:
        return await self.get_json(f"/sobjects/{quote(sobject, safe='')}/updated",
                                   params={"start": _soql_datetime(start), "end": _soql_datetime(end)})

    async def deleted(self, sobject: str, start: datetime, end: datetime) -> dict[str, Any]:
        return await self.get_json(f"/sobjects/{quote(sobject, safe='')}/deleted",
                                   params={"start": _soql_datetime(start), "end": _soql_datetime(end)})

    # -- composite and collections ---------------------------------------------------------------------------

    async def send(self, subrequests: Sequence[SubRequest]) -> list[SubResponse]:
        """Send subrequests in as few calls as the composite limits allow; answers in the same order.

        A subrequest that failed transiently (5xx, UNABLE_TO_LOCK_ROW for the whole subrequest) is sent again
        with backoff, packed with the others that failed, as long as it is idempotent and retries are allowed.
        """
        results: list[SubResponse | None] = [None] * len(subrequests)
        pending = list(range(len(subrequests)))
        attempt = 0
        while pending:
            answers = await asyncio.gather(*(self._send_chunk([subrequests[i] for i in chunk])
                                             for chunk in _pack(subrequests, pending)))
            retry: list[int] = []
            for chunk, chunk_answers in zip(_pack(subrequests, pending), answers, strict=True):
                for index, answer in zip(chunk, chunk_answers, strict=True):
                    results[index] = answer
                    if answer.retryable(subrequests[index].idempotent):
                        retry.append(index)
            if not retry or not await self._backoff(attempt):
                break
            attempt += 1
            pending = retry
        return [r for r in results if r is not None]

    async def _send_chunk(self, chunk: list[SubRequest]) -> list[SubResponse]:
        if len(chunk) == 1:
            sub = chunk[0]
            try:
                response = await self.request(sub.method, sub.path, json=sub.body, idempotent=sub.idempotent)
            except SalesforceApiError as error:
                if isinstance(error, ApiLimitExceeded):
                    raise
                return [SubResponse(error.status, [{"errorCode": e.code, "message": e.message, "fields": list(e.fields)}
                                                   for e in error.errors])]
            return [SubResponse(response.status_code, _json_or_text(response) if response.content else None)]
        body = {"allOrNone": False, "compositeRequest": [
            {"method": sub.method, "url": f"/services/data/v{self.api_version}{sub.path}",
             "referenceId": f"r{i}", **({"body": sub.body} if sub.body is not None else {})}
            for i, sub in enumerate(chunk)]}
        # Idempotent only when every part is: a lost answer to a composite with creates is not sent again.
        response = await self.request("POST", "/composite", json=body,
                                      idempotent=all(sub.idempotent for sub in chunk))
        parsed = response.json().get("compositeResponse") or []
        by_reference = {item.get("referenceId"): item for item in parsed if isinstance(item, dict)}
        out = []
        for i in range(len(chunk)):
            item = by_reference.get(f"r{i}")
            if item is None:
                out.append(SubResponse(500, [{"errorCode": "UNKNOWN_EXCEPTION",
                                              "message": "the composite answer has no result for this part"}]))
            else:
                out.append(SubResponse(int(item.get("httpStatusCode") or 500), item.get("body")))
        return out

    async def write(self, operations: Sequence[RowWrite]) -> list[list[RowResult]]:
        """Collection writes for several operations at once; per-row results in each operation's row order.

        Rows that failed with UNABLE_TO_LOCK_ROW are sent again (only those rows) with backoff while retries
        are allowed; a created row that failed that way was not created, so sending it again is safe.
        """
        results: list[list[RowResult | None]] = [[None] * len(op.rows) for op in operations]
        pending: list[tuple[int, int]] = [(o, r) for o, op in enumerate(operations) for r in range(len(op.rows))]
        attempt = 0
        while pending:
            subrequests: list[SubRequest] = []
            slots: list[list[tuple[int, int]]] = []
            by_operation: dict[int, list[int]] = {}
            for o, r in pending:
                by_operation.setdefault(o, []).append(r)
            for o, rows in by_operation.items():
                op = operations[o]
                for start in range(0, len(rows), COLLECTION_LIMIT):
                    part = rows[start:start + COLLECTION_LIMIT]
                    subrequests.append(_collection_request(op, [op.rows[r] for r in part]))
                    slots.append([(o, r) for r in part])
            retry: list[tuple[int, int]] = []
            for sub_slots, answer in zip(slots, await self.send(subrequests), strict=True):
                if answer.ok and isinstance(answer.body, list):
                    row_results = [RowResult.parse(item) for item in answer.body]
                else:
                    row_results = [RowResult.failed(answer.errors or [SalesforceErrorItem(
                        "UNKNOWN_EXCEPTION", f"unexpected answer {answer.status}")])] * len(sub_slots)
                for (o, r), result in zip(sub_slots, row_results, strict=False):
                    results[o][r] = result
                    if result.transient:
                        retry.append((o, r))
            if not retry or not await self._backoff(attempt):
                break
            attempt += 1
            pending = retry
        return [[r or RowResult.failed([SalesforceErrorItem("UNKNOWN_EXCEPTION", "no result")]) for r in op]
                for op in results]

    async def retrieve(self, sobject: str, ids: Sequence[str], fields: Sequence[str],
                       ) -> dict[str, dict[str, Any]]:
        """Rows by id (2,000 ids per collection, five collections per call); ids not found are absent."""
        return (await self.retrieve_many([(sobject, ids, fields)]))[0]

    async def retrieve_many(self, requests: Sequence[tuple[str, Sequence[str], Sequence[str]]],
                            ) -> list[dict[str, dict[str, Any]]]:
        """Several objects' rows at once, packed in the same composite calls."""
        subrequests: list[SubRequest] = []
        owners: list[int] = []
        for index, (sobject, ids, fields) in enumerate(requests):
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), RETRIEVE_LIMIT):
                subrequests.append(SubRequest("POST", f"/composite/sobjects/{quote(sobject, safe='')}",
                                              {"ids": unique[start:start + RETRIEVE_LIMIT], "fields": list(fields)}))
                owners.append(index)
        out: list[dict[str, dict[str, Any]]] = [{} for _ in requests]
        for owner, answer in zip(owners, await self.send(subrequests), strict=True):
            if not answer.ok:
                raise _as_error(answer)
            for row in answer.body or []:
                if isinstance(row, dict) and row.get("Id"):
                    out[owner][row["Id"]] = row
        return out


def _collection_request(op: RowWrite, rows: list[dict[str, Any]]) -> SubRequest:
    body = {"allOrNone": False, "records": rows}
    if op.kind == "create":
        return SubRequest("POST", "/composite/sobjects", body, idempotent=False)
    if op.kind == "update":
        return SubRequest("PATCH", "/composite/sobjects", body)
    if op.kind == "upsert":
        return SubRequest("PATCH", f"/composite/sobjects/{quote(op.sobject or '', safe='')}/"
                                   f"{quote(op.external_id_field or '', safe='')}", body)
    raise ValueError(f"unknown collection operation {op.kind!r}")


def _pack(subrequests: Sequence[SubRequest], indexes: Sequence[int]) -> list[list[int]]:
    """Chunks of at most 25 subrequests with at most 5 heavy ones (queries and collections)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    heavy = 0
    for index in indexes:
        is_heavy = subrequests[index].heavy
        if current and (len(current) == COMPOSITE_LIMIT or (is_heavy and heavy == COMPOSITE_HEAVY_LIMIT)):
            chunks.append(current)
            current, heavy = [], 0
        current.append(index)
        heavy += is_heavy
    if current:
        chunks.append(current)
    return chunks


def _as_error(answer: SubResponse) -> SalesforceApiError:
    if answer.status == 403 and {e.code for e in answer.errors} & LIMIT_CODES:
        return ApiLimitExceeded(answer.status, answer.errors)
    return SalesforceApiError(answer.status, answer.errors)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return [{"errorCode": "UNKNOWN_EXCEPTION", "message": response.text[:500]}]


def _http_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _soql_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted), e.g. `2024-05-01T10:00:00.000Z`: Corral's own timestamp format."""
    return format_timestamp(moment)


def soql_string(value: str) -> str:
    """A quoted SOQL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def parse_salesforce_datetime(text: str | None) -> datetime | None:
    """`2024-05-01T10:00:00.000+0000` (Salesforce's output) or any ISO-8601 form; None for null or junk."""
    if not text:
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        return None

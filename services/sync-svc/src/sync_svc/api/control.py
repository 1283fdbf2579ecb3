"""`/corral/v1/salesforce/sync`, `/budget`, `/records/.../resync` and `/errors`: running the sync and seeing it."""

from __future__ import annotations

from typing import Any

from crm_common.errors import error_responses
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from sync_svc.api.deps import Reader, Resources, Session, Writer
from sync_svc.service import control as service

router = APIRouter(prefix="/corral/v1/salesforce", tags=["Salesforce sync"])
ERRORS = error_responses(400, 401, 403, 404, 409, 429, 502, 503)
CATEGORIES = "ASSOCIATIONS, CUSTOM_CODE, DUPLICATES, PERMISSIONS, PROPERTY_VALUES, CONNECTION or API_LIMIT"


class ApiCalls(BaseModel):
    last24h: int
    dailyBudget: int | None = None
    remaining: int | None = None


class ObjectStatus(BaseModel):
    objectType: str
    salesforceObject: str
    enabled: bool
    watermark: str | None = Field(default=None, description="SystemModstamp up to which Salesforce changes are in")
    lastPolledAt: str | None = None
    lastCycle: dict[str, Any] | None = None
    counts: dict[str, int]
    queuedChanges: int
    linkedRecords: int


class SyncStatus(BaseModel):
    state: str = Field(description="NOT_CONNECTED, NOT_STARTED (saved for later), RUNNING, PAUSED, PAUSED_API_LIMIT or "
                                   "PAUSED_CONNECTION")
    startedAt: str | None = None
    suspendedReason: str | None = None
    lastCycleAt: str | None = None
    lastCycle: dict[str, Any] | None = None
    objects: list[ObjectStatus]
    queuedChanges: int
    apiCalls: ApiCalls
    errors: dict[str, int] = Field(description="Open errors by category")


class CycleSummary(BaseModel):
    inbound: dict[str, dict[str, int]] = Field(description="Per object: read, created, updated, linked, unchanged, "
                                                           "failed, conflicts, ...")
    outbound: dict[str, dict[str, int]]
    apiCalls: int = Field(description="Salesforce calls this cycle made")
    skipped: str | None = None
    stopped: str | None = None
    polled: bool | None = None


class BudgetInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dailyApiCalls: int | None = Field(description="Calls allowed to the sync in any 24 hours; null for no cap")


class SyncError(BaseModel):
    id: str
    category: str
    direction: str
    objectType: str | None = None
    recordId: str | None = None
    salesforceId: str | None = None
    code: str
    message: str
    fields: list[str]
    transient: bool
    attempts: int
    firstSeenAt: str | None = None
    lastSeenAt: str | None = None
    nextRetryAt: str | None = None


class NextPage(BaseModel):
    after: str


class Paging(BaseModel):
    next: NextPage


class SyncErrors(BaseModel):
    results: list[SyncError]
    paging: Paging | None = None


class RetryOutcome(BaseModel):
    resolved: bool
    error: SyncError | None = None
    cycle: CycleSummary


@router.post("/sync/start", response_model=SyncStatus, responses=ERRORS,
             summary="Start continuous sync: only what changes in Salesforce after now is pulled")
async def start(auth: Writer, session: Session, resources: Resources) -> Any:
    return await service.start(account_id=auth.account_id, session=session, connector=resources.connector)


@router.post("/sync/pause", response_model=SyncStatus, responses=ERRORS,
             summary="Pause the sync (Corral changes keep queueing; start resumes)")
async def pause(auth: Writer, session: Session) -> Any:
    return await service.pause(account_id=auth.account_id, session=session)


@router.post("/sync/run", response_model=CycleSummary, response_model_exclude_none=True, responses=ERRORS,
             summary="Run one inbound and outbound cycle now and answer what it did")
async def run(auth: Writer, session: Session, resources: Resources) -> Any:
    return await service.run_now(account_id=auth.account_id, session=session, engine=resources.engine)


@router.get("/sync/status", response_model=SyncStatus, responses=ERRORS,
            summary="State, per object the watermark, last cycle, counts and queued changes, API calls and budget")
async def status(auth: Reader, session: Session) -> Any:
    return await service.status(account_id=auth.account_id, session=session)


@router.put("/budget", response_model=SyncStatus, responses=ERRORS,
            summary="The daily API-call budget: at the cap sync pauses; automatic retries stop above 75% of it")
async def budget(body: BudgetInput, auth: Writer, session: Session) -> Any:
    return await service.set_budget(account_id=auth.account_id, daily_api_calls=body.dailyApiCalls, session=session)


@router.post("/records/{objectType}/{recordId}/resync", response_model=CycleSummary, response_model_exclude_none=True,
             responses=ERRORS, summary="Sync one record now, both ways")
async def resync(objectType: str, recordId: str, auth: Writer, session: Session, resources: Resources) -> Any:
    return await service.resync_record(account_id=auth.account_id, object_type_name=objectType, record_id=recordId,
                                       session=session, engine=resources.engine)


@router.get("/errors", response_model=SyncErrors, response_model_exclude_none=True, responses=ERRORS,
            summary="Sync errors (paged), by category, object and direction")
async def errors(auth: Reader, session: Session,
                 category: str | None = Query(default=None, description=CATEGORIES),
                 objectType: str | None = Query(default=None), direction: str | None = Query(default=None),
                 after: str | None = Query(default=None), limit: int = Query(default=100, ge=1, le=500)) -> Any:
    return await service.list_errors(account_id=auth.account_id, category=category, object_type_name=objectType,
                                     direction=direction, after=after, limit=limit, session=session)


@router.post("/errors/{errorId}/retry", response_model=RetryOutcome, response_model_exclude_none=True,
             responses=ERRORS, summary="Try one failed record again now")
async def retry(errorId: str, auth: Writer, session: Session, resources: Resources) -> Any:
    return await service.retry_error(account_id=auth.account_id, error_id=errorId, session=session,
                                     engine=resources.engine)

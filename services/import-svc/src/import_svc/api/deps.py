"""Annotated dependencies: the request's unit of work, the caller's verified auth context, and the
resources the lifespan builds (`ImportResources`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from crm_common.auth import Auth
from crm_common.contracts.merges import MergesClient
from crm_common.contracts.records import RecordsClient
from crm_common.deps import Session
from fastapi import Depends, Request

if TYPE_CHECKING:
    from import_svc.worker import ImportWorker


@dataclass
class ImportResources:
    records: RecordsClient
    merges: MergesClient
    # Decoding and reading images is CPU work in threads: at most `ocr_at_once` at a time per process.
    ocr_slots: asyncio.Semaphore
    worker: ImportWorker | None = None


def resources_of(request: Request) -> ImportResources:
    return request.app.state.runtime.resources


Resources = Annotated[ImportResources, Depends(resources_of)]

__all__ = ["Auth", "ImportResources", "Resources", "Session", "resources_of"]

"""CloudEvents 1.0 JSON envelope, structured (one event) and batch mode.

Written here rather than taken from the `cloudevents` SDK because the SDK has no batch
format, and batches are how a million-row import stays a few thousand messages.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class CloudEvent(BaseModel):
    """One event; `corralaccount` is the CloudEvents extension attribute naming the account."""

    model_config = ConfigDict(populate_by_name=True)

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: str = Field(default_factory=lambda: now_iso())
    subject: str | None = None
    datacontenttype: str = "application/json"
    corralaccount: int
    data: dict[str, Any] = Field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_event(event: CloudEvent) -> bytes:
    return orjson.dumps(event.model_dump(exclude_none=True))


def encode_batch(events: list[CloudEvent]) -> bytes:
    return orjson.dumps([e.model_dump(exclude_none=True) for e in events])


def decode_events(body: bytes, content_type: str | None) -> list[CloudEvent]:
    """Both modes decode to a list so consumers handle one shape."""
    payload = orjson.loads(body)
    if content_type == BATCH_CONTENT_TYPE or isinstance(payload, list):
        return [CloudEvent.model_validate(item) for item in payload]
    return [CloudEvent.model_validate(payload)]

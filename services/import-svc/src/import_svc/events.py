"""The events import-svc publishes (through its outbox): import.started, .completed, .failed, .canceled, .reverted."""

from __future__ import annotations

from typing import Any

from crm_common.cloudevents import CloudEvent


def import_event(event_type: str, row: dict[str, Any], *, traceparent: str | None = None, **data: Any) -> CloudEvent:
    return CloudEvent(source="import-svc", type=event_type, subject=f"imports/{row['id']}",
                      corralaccount=row["account_id"], traceparent=traceparent,
                      data={"importId": str(row["id"]), "name": row["name"], "state": row["state"], **data})

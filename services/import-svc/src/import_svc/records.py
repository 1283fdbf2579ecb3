"""records-svc as the import sees it: its internal bulk API plus the public property routes."""

from __future__ import annotations

import asyncio
import zlib
from datetime import datetime
from typing import Any

import httpx
import orjson
import structlog
from crm_common.http import ServiceClient

log = structlog.get_logger(__name__)

RETRIES = 5


class RecordsError(Exception):
    def __init__(self, status: int, body: Any, what: str) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"records-svc {what} answered {status}: {message}")
        self.status = status
        self.body = body
        self.message = message or ""


class RecordsClient:
    def __init__(self, client: ServiceClient, *, retries: int = RETRIES, parallel_calls: int = 1) -> None:
        self._client = client
        self._retries = max(1, retries)
        self._parallel_calls = max(1, parallel_calls)

    async def _call(self, method: str, url: str, *, account_id: int, what: str, **kwargs: Any) -> Any:
        """Retries what a retry can fix: connection errors, 409 unique races, 5xx (every call is idempotent)."""
        delay = 0.2
        for attempt in range(self._retries):
            try:
                response = await self._client.request(method, url, account_id=account_id, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self._retries - 1:
                    raise RecordsError(503, {"message": repr(exc)}, what) from exc
                log.warning("records-svc unreachable; retrying", error=repr(exc), what=what)
            else:
                if response.status_code < 300:
                    return orjson.loads(response.content) if response.content else None
                retryable = response.status_code in (409, 429) or response.status_code >= 500
                body = _json(response)
                if not retryable or attempt == self._retries - 1:
                    raise RecordsError(response.status_code, body, what)
            await asyncio.sleep(delay)
            delay = min(delay * 3, 5.0)
        raise AssertionError("unreachable")

    async def properties(self, account_id: int, object_type: str) -> dict[str, dict[str, Any]]:
        body = await self._call("GET", f"/crm/v3/properties/{object_type}", account_id=account_id,
                                what="list properties")
        return {p["name"]: p for p in body.get("results", [])}

    async def create_property(self, account_id: int, object_type: str, definition: dict[str, Any]) -> dict[str, Any]:
        response = await self._client.request("POST", f"/crm/v3/properties/{object_type}", account_id=account_id,
                                              json=definition)
        if response.status_code == 409:  # created by an earlier attempt of this import
            return definition
        if response.status_code >= 300:
            raise RecordsError(response.status_code, _json(response), "create property")
        return orjson.loads(response.content)

    async def bulk_upsert(self, account_id: int, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """One bulk write, sent as parallel calls split by key when it is large (see split_by_key)."""
        parts = split_by_key(body, self._parallel_calls)
        if len(parts) == 1:
            return await self._bulk_upsert_call(account_id, object_type, body)
        answers = await asyncio.gather(*(self._bulk_upsert_call(account_id, object_type, {**body, "rows": rows})
                                         for rows in parts))
        merged: dict[str, Any] = {"results": [r for answer in answers for r in answer.get("results", [])]}
        for counter in ("created", "updated", "unchanged", "failed"):
            merged[counter] = sum(int(answer.get(counter, 0)) for answer in answers)
        return merged

    async def _bulk_upsert_call(self, account_id: int, object_type: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", f"/internal/v1/records/{object_type}/bulk-upsert", account_id=account_id,
                                what="bulk-upsert", content=orjson.dumps(body),
                                headers={"content-type": "application/json"})

    async def resolve(self, account_id: int, object_type: str, prop: str, values: list[str]) -> dict[str, list[str]]:
        if not values:
            return {}
        body = await self._call("POST", f"/internal/v1/records/{object_type}/resolve", account_id=account_id,
                                what="resolve", content=orjson.dumps({"property": prop, "values": values}),
                                headers={"content-type": "application/json"})
        return {str(k).lower(): [str(i) for i in v] for k, v in (body.get("matches") or {}).items()}

    async def associate(self, account_id: int, operation_id: str, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not inputs:
            return []
        body = await self._call("POST", "/internal/v1/associations/bulk", account_id=account_id,
                                what="associations/bulk",
                                content=orjson.dumps({"operationId": operation_id, "inputs": inputs}),
                                headers={"content-type": "application/json"})
        return body.get("results", [])

    async def association_labels(self, account_id: int, from_type: str, to_type: str) -> list[dict[str, Any]]:
        body = await self._call("GET", f"/crm/v4/associations/{from_type}/{to_type}/labels", account_id=account_id,
                                what="association labels")
        return body.get("results", [])

    async def timestamps(self, account_id: int, object_type: str, ids: list[str]
                         ) -> dict[str, tuple[datetime | None, datetime | None]]:
        """createdAt/updatedAt of records, through the public batch read (100 per call)."""
        out: dict[str, tuple[datetime | None, datetime | None]] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            body = await self._call("POST", f"/crm/v3/objects/{object_type}/batch/read", account_id=account_id,
                                    what="batch read", content=orjson.dumps({"inputs": [{"id": i} for i in chunk],
                                                                             "properties": ["hs_object_id"]}),
                                    headers={"content-type": "application/json"})
            for item in body.get("results", []):
                out[str(item["id"])] = (_when(item.get("createdAt")), _when(item.get("updatedAt")))
        return out

    async def find_by_values(self, account_id: int, object_type: str, prop: str, values: list[str]) -> dict[str, str]:
        """value -> record id for any property, through the public search (IN, 100 values per filter)."""
        out: dict[str, str] = {}
        for start in range(0, len(values), 100):
            chunk = values[start:start + 100]
            after: str | None = None
            while True:
                body: dict[str, Any] = {"filterGroups": [{"filters": [{"propertyName": prop, "operator": "IN",
                                                                       "values": chunk}]}],
                                        "properties": [prop], "limit": 100}
                if after:
                    body["after"] = after
                page = await self._call("POST", f"/crm/v3/objects/{object_type}/search", account_id=account_id,
                                        what="search", content=orjson.dumps(body),
                                        headers={"content-type": "application/json"})
                for item in page.get("results", []):
                    value = (item.get("properties") or {}).get(prop)
                    if value:
                        out[value] = str(item["id"])
                after = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not after:
                    break
        return out

    async def undo(self, account_id: int, operation_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/internal/v1/operations/{operation_id}/undo", account_id=account_id,
                                what="undo")

    async def record_properties(self, account_id: int, object_type: str, ids: list[str], properties: list[str]
                                ) -> dict[str, dict[str, str]]:
        """record id -> the asked properties that have a value, through the public batch read (100 per call)."""
        out: dict[str, dict[str, str]] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            body = await self._call("POST", f"/crm/v3/objects/{object_type}/batch/read", account_id=account_id,
                                    what="batch read", content=orjson.dumps({"inputs": [{"id": i} for i in chunk],
                                                                             "properties": properties}),
                                    headers={"content-type": "application/json"})
            for item in body.get("results", []):
                values = item.get("properties") or {}
                out[str(item["id"])] = {p: str(values[p]) for p in properties if values.get(p) not in (None, "")}
        return out

    async def operation_journal(self, account_id: int, operation_id: str, *, after: int, limit: int
                                ) -> dict[str, Any]:
        """One page of what an operation wrote (records and associations), in journal id order after `after`."""
        return await self._call("GET", f"/internal/v1/operations/{operation_id}/journal", account_id=account_id,
                                what="operation journal", params={"after": after, "limit": limit})


# Below this many rows per part, a second call costs more than it overlaps.
MIN_ROWS_PER_PARALLEL_CALL = 1_000


def split_by_key(body: dict[str, Any], parts: int) -> list[list[dict[str, Any]]]:
    """The rows of one bulk write in `parts` groups that can be written at the same time.

    Rows that address one record (same record id or unique key, compared as records-svc normalises
    them) always fall in the same group, so the groups never race for a record or its unique value and
    a later row still overrides an earlier one. Keyless rows create one record each and are dealt
    round-robin.
    """
    rows: list[dict[str, Any]] = body["rows"]
    parts = min(parts, len(rows) // MIN_ROWS_PER_PARALLEL_CALL)
    if parts <= 1:
        return [rows]
    id_property = body.get("idProperty")
    groups: list[list[dict[str, Any]]] = [[] for _ in range(parts)]
    for position, row in enumerate(rows):
        key = row.get("id")
        if key is None and id_property:
            key = row["properties"].get(id_property)
        if key is None or key == "":
            groups[position % parts].append(row)
        else:
            groups[zlib.crc32(str(key).strip().lower().encode()) % parts].append(row)
    return [group for group in groups if group]


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value))


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {"message": response.text[:500]}

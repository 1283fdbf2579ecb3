"""What the sync asks of records-svc, over the shared internal client (`crm_common.contracts.records`).

Writes carry the source SALESFORCE: the history shows it, and the `record.*` events they cause are
recognised as echoes by the outbound consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_common.contracts.records import BulkRowInput, BulkRowResult, BulkUpsertOptions, RecordsClient

SOURCE_TYPE = "SALESFORCE"
# Records one read or write call carries (records-svc takes up to 20,000 rows per bulk call).
RECORDS_PER_CALL = 10_000


@dataclass
class CorralRecord:
    id: int
    properties: dict[str, str]
    changed_at: dict[str, datetime] = field(default_factory=dict)
    archived: bool = False
    merged_into: int | None = None


class SyncRecords:
    def __init__(self, client: RecordsClient) -> None:
        self.client = client

    async def properties(self, account_id: int, object_type: str) -> dict[str, dict[str, Any]]:
        return await self.client.properties(account_id, object_type)

    async def read(self, account_id: int, object_type_id: str, ids: list[int],
                   properties: list[str]) -> dict[int, CorralRecord]:
        """Records by id with each asked property's value and last change time; unknown ids are absent."""
        out: dict[int, CorralRecord] = {}
        for start in range(0, len(ids), RECORDS_PER_CALL):
            answer = await self.client.read_with_changes(account_id, object_type_id,
                                                         [str(i) for i in ids[start:start + RECORDS_PER_CALL]],
                                                         properties)
            for item in answer.results:
                changed = {name: _parse_time(change["timestamp"]) for name, change in item["changes"].items()
                           if change.get("timestamp")}
                out[int(item["id"])] = CorralRecord(
                    id=int(item["id"]), properties={k: v for k, v in item["properties"].items() if v is not None},
                    changed_at={k: v for k, v in changed.items() if v is not None}, archived=item["archived"],
                    merged_into=int(item["mergedInto"]) if item.get("mergedInto") else None)
        return out

    async def find(self, account_id: int, object_type_id: str, prop: str, values: list[str]) -> dict[str, list[int]]:
        """Normalised value -> ids of live records holding it (an email, or a Salesforce id property)."""
        found: dict[str, list[int]] = {}
        for start in range(0, len(values), RECORDS_PER_CALL):
            chunk = values[start:start + RECORDS_PER_CALL]
            matches = await self.client.find_by_property(account_id, object_type_id, prop, chunk)
            for value, ids in matches.items():
                found.setdefault(value.lower(), []).extend(int(i) for i in ids)
        return found

    async def write(self, account_id: int, object_type_id: str, rows: list[BulkRowInput], *, operation: str,
                    id_property: str | None, operation_id: str | None) -> list[BulkRowResult]:
        results: list[BulkRowResult] = []
        options = BulkUpsertOptions(operation=operation, idProperty=id_property,  # type: ignore[arg-type]
                                    sourceType=SOURCE_TYPE, sourceId="salesforce-sync", operationId=operation_id)
        for start in range(0, len(rows), RECORDS_PER_CALL):
            answer = await self.client.bulk_upsert(account_id, object_type_id, options,
                                                   rows[start:start + RECORDS_PER_CALL])
            results.extend(answer.results)
        return results


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None

"""SQL behind the Salesforce sync's internal routes (`api/internal_sync.py`): records with each property's last
change, and live records found by any property value."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_PROPERTY_NAME = re.compile(r"^[a-z0-9_]{1,100}$")


async def records_with_changes(session: AsyncSession, account_id: int, object_type_id: str, ids: list[int],
                               properties: list[str]) -> list[dict[str, Any]]:
    """Per record: the asked properties' values and their newest history entry (value, timestamp, sourceType,
    sourceId). A record created in bulk keeps its creation source once (`created_source`, migration 0006): a
    property it has not changed since carries that source."""
    rows = await session.execute(text("""
        SELECT r.id, r.archived, r.merged_into,
               coalesce((SELECT jsonb_object_agg(p, r.properties -> p) FROM unnest(CAST(:props AS text[])) AS p
                         WHERE r.properties ? p), '{}'::jsonb) AS properties,
               coalesce((SELECT jsonb_object_agg(p, coalesce(r.history -> p -> 0, r.created_source))
                         FROM unnest(CAST(:props AS text[])) AS p
                         WHERE r.history ? p OR (r.created_source IS NOT NULL AND r.properties ? p)),
                        '{}'::jsonb) AS changes
        FROM records r
        WHERE r.account_id = :a AND r.object_type_id = :t AND r.id = ANY(CAST(:ids AS bigint[]))
        ORDER BY r.id"""), {"a": account_id, "t": object_type_id, "ids": ids, "props": properties})
    return [dict(r) for r in rows.mappings()]


async def live_records_by_value(session: AsyncSession, account_id: int, object_type_id: str, prop: str,
                                values: list[str]) -> dict[str, list[int]]:
    """Value (lower-cased) -> ids of live records whose property holds it, compared without case. The Salesforce
    id properties have expression indexes (migration 0007); other properties are read by a scan."""
    if not _PROPERTY_NAME.match(prop):
        raise ValueError(f"not a property name: {prop!r}")
    # The name is written into the statement (it was checked above): an expression index only serves a query
    # whose expression names the same key, which a bound parameter would not.
    expression = f"lower(r.properties ->> '{prop}')"
    rows = await session.execute(text(f"""
        SELECT {expression} AS value, r.id FROM records r
        WHERE r.account_id = :a AND r.object_type_id = :t AND r.properties ? '{prop}'
          AND {expression} = ANY(CAST(:v AS text[])) AND NOT r.archived AND r.merged_into IS NULL
        ORDER BY r.id"""), {"a": account_id, "t": object_type_id, "v": [v.lower() for v in values]})
    out: dict[str, list[int]] = {}
    for row in rows:
        out.setdefault(row.value, []).append(row.id)
    return out


async def live_ids(session: AsyncSession, account_id: int, ids: list[int]) -> set[int]:
    rows = await session.execute(text("SELECT id FROM records WHERE account_id = :a AND id = ANY(CAST(:ids AS bigint[])) "
                                      "AND NOT archived AND merged_into IS NULL"), {"a": account_id, "ids": ids})
    return {r.id for r in rows}

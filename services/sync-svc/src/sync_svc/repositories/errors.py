"""SQL for sync errors: one open error per record and direction, cleared when the record syncs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ERROR_COLUMNS = ("id, account_id, direction, object_type, record_key, record_id, salesforce_id, category, code, "
                 "message, fields, transient, attempts, first_seen_at, last_seen_at, next_retry_at")


@dataclass
class ErrorWrite:
    direction: str
    object_type: str
    category: str
    code: str
    message: str
    record_id: int | None = None
    salesforce_id: str | None = None
    fields: list[str] = field(default_factory=list)
    transient: bool = False
    next_retry_at: datetime | None = None

    @property
    def record_key(self) -> str:
        if self.direction == "OUTBOUND" and self.record_id is not None:
            return str(self.record_id)
        return self.salesforce_id or (str(self.record_id) if self.record_id is not None else "")


async def record(session: AsyncSession, account_id: int, errors: Sequence[ErrorWrite]) -> list[dict[str, Any]]:
    """Upsert; answers the rows (with `attempts` 1 for errors seen for the first time)."""
    if not errors:
        return []
    rows = await session.execute(text(f"""
        INSERT INTO sync_errors AS e (account_id, direction, object_type, record_key, record_id, salesforce_id,
                                      category, code, message, fields, transient, next_retry_at)
        SELECT :a, r.direction, r.object_type, r.record_key, r.record_id, r.salesforce_id, r.category, r.code,
               r.message, r.fields, r.transient, r.next_retry_at
        FROM unnest(CAST(:directions AS text[]), CAST(:object_types AS text[]), CAST(:keys AS text[]),
                    CAST(:record_ids AS bigint[]), CAST(:salesforce_ids AS text[]), CAST(:categories AS text[]),
                    CAST(:codes AS text[]), CAST(:messages AS text[]), CAST(:fields AS jsonb[]),
                    CAST(:transients AS boolean[]), CAST(:retries AS timestamptz[]))
             AS r(direction, object_type, record_key, record_id, salesforce_id, category, code, message, fields,
                  transient, next_retry_at)
        ON CONFLICT (account_id, direction, object_type, record_key) DO UPDATE SET
            record_id = coalesce(excluded.record_id, e.record_id),
            salesforce_id = coalesce(excluded.salesforce_id, e.salesforce_id),
            category = excluded.category, code = excluded.code, message = excluded.message,
            fields = excluded.fields, transient = excluded.transient, attempts = e.attempts + 1,
            last_seen_at = now(), next_retry_at = excluded.next_retry_at
        RETURNING {ERROR_COLUMNS}"""), {
        "a": account_id,
        "directions": [e.direction for e in errors], "object_types": [e.object_type for e in errors],
        "keys": [e.record_key for e in errors], "record_ids": [e.record_id for e in errors],
        "salesforce_ids": [e.salesforce_id for e in errors], "categories": [e.category for e in errors],
        "codes": [e.code for e in errors], "messages": [e.message for e in errors],
        "fields": [orjson.dumps(e.fields).decode() for e in errors],
        "transients": [e.transient for e in errors], "retries": [e.next_retry_at for e in errors],
    })
    return [dict(r) for r in rows.mappings()]


async def clear(session: AsyncSession, account_id: int, direction: str, object_type: str,
                record_keys: Sequence[str]) -> int:
    if not record_keys:
        return 0
    result = await session.execute(text("DELETE FROM sync_errors WHERE account_id = :a AND direction = :d "
                                        "AND object_type = :t AND record_key = ANY(:keys)"),
                                   {"a": account_id, "d": direction, "t": object_type, "keys": list(record_keys)})
    return result.rowcount or 0


async def clear_connection_errors(session: AsyncSession, account_id: int, categories: Sequence[str]) -> int:
    result = await session.execute(text("DELETE FROM sync_errors WHERE account_id = :a AND record_key = '' "
                                        "AND category = ANY(:c)"), {"a": account_id, "c": list(categories)})
    return result.rowcount or 0


async def page(session: AsyncSession, account_id: int, *, category: str | None, object_type: str | None,
               direction: str | None, after: int, limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"""
        SELECT {ERROR_COLUMNS} FROM sync_errors
        WHERE account_id = :a AND id > :after
          AND (CAST(:c AS text) IS NULL OR category = :c) AND (CAST(:t AS text) IS NULL OR object_type = :t)
          AND (CAST(:d AS text) IS NULL OR direction = :d)
        ORDER BY id LIMIT :l"""), {"a": account_id, "after": after, "c": category, "t": object_type,
                                   "d": direction, "l": limit})
    return [dict(r) for r in rows.mappings()]


async def get(session: AsyncSession, account_id: int, error_id: int) -> dict[str, Any] | None:
    row = (await session.execute(text(f"SELECT {ERROR_COLUMNS} FROM sync_errors WHERE account_id = :a AND id = :i"),
                                 {"a": account_id, "i": error_id})).mappings().first()
    return dict(row) if row else None


async def due_retries(session: AsyncSession, account_id: int, limit: int = 10_000) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"""
        SELECT {ERROR_COLUMNS} FROM sync_errors
        WHERE account_id = :a AND next_retry_at IS NOT NULL AND next_retry_at <= now() AND record_key <> ''
        ORDER BY next_retry_at LIMIT :l"""), {"a": account_id, "l": limit})
    return [dict(r) for r in rows.mappings()]


async def postpone(session: AsyncSession, error_ids: Sequence[int], until: datetime | None) -> None:
    if error_ids:
        await session.execute(text("UPDATE sync_errors SET next_retry_at = :u WHERE id = ANY(:ids)"),
                              {"ids": list(error_ids), "u": until})


async def counts(session: AsyncSession, account_id: int) -> dict[str, int]:
    rows = await session.execute(text("SELECT category, count(*) FROM sync_errors WHERE account_id = :a "
                                      "GROUP BY category"), {"a": account_id})
    return {r[0]: int(r[1]) for r in rows}

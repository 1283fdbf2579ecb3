"""SQL for synced objects, their field mappings and the cached Salesforce describes."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

OBJECT_COLUMNS = ("account_id, object_type, salesforce_object, enabled, watermark, started_from, last_polled_at, "
                  "last_cycle, counts, created_at, updated_at")
MAPPING_COLUMNS = ("id, account_id, object_type, salesforce_object, property, salesforce_field, sync_rule, standard, "
                   "property_type, property_field_type, salesforce_type, created_at, updated_at")


async def objects(session: AsyncSession, account_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"SELECT {OBJECT_COLUMNS} FROM sync_objects WHERE account_id = :a "
                                      "ORDER BY object_type"), {"a": account_id})
    return [dict(r) for r in rows.mappings()]


async def get_object(session: AsyncSession, account_id: int, object_type: str, *,
                     for_update: bool = False) -> dict[str, Any] | None:
    row = (await session.execute(text(f"SELECT {OBJECT_COLUMNS} FROM sync_objects WHERE account_id = :a "
                                      "AND object_type = :t" + (" FOR UPDATE" if for_update else "")),
                                 {"a": account_id, "t": object_type})).mappings().first()
    return dict(row) if row else None


async def save_object(session: AsyncSession, *, account_id: int, object_type: str, salesforce_object: str,
                      enabled: bool) -> dict[str, Any]:
    row = (await session.execute(text(f"""
        INSERT INTO sync_objects (account_id, object_type, salesforce_object, enabled)
        VALUES (:a, :t, :s, :e)
        ON CONFLICT (account_id, object_type) DO UPDATE SET
            salesforce_object = excluded.salesforce_object, enabled = excluded.enabled, updated_at = now(),
            -- An object enabled again (or pointed at another Salesforce object) starts from the next poll, as
            -- a start does: changes made while it was off are not pulled.
            watermark = CASE WHEN sync_objects.salesforce_object = excluded.salesforce_object AND sync_objects.enabled
                             THEN sync_objects.watermark END,
            started_from = CASE WHEN sync_objects.salesforce_object = excluded.salesforce_object
                                     AND sync_objects.enabled THEN sync_objects.started_from END
        RETURNING {OBJECT_COLUMNS}"""), {"a": account_id, "t": object_type, "s": salesforce_object,
                                         "e": enabled})).mappings().one()
    return dict(row)


async def set_watermark(session: AsyncSession, account_id: int, object_type: str, watermark: Any, *,
                        starting: bool = False) -> None:
    """`starting`: the object's first watermark, which is also where its sync starts from."""
    if starting:
        await session.execute(text(
            "UPDATE sync_objects SET watermark = :w, started_from = :w, updated_at = now() "
            "WHERE account_id = :a AND object_type = :t AND watermark IS NULL"),
            {"a": account_id, "t": object_type, "w": watermark})
        return
    await session.execute(text(
        "UPDATE sync_objects SET watermark = :w, updated_at = now() WHERE account_id = :a AND object_type = :t"),
        {"a": account_id, "t": object_type, "w": watermark})


async def record_poll(session: AsyncSession, account_id: int, object_type: str, *, watermark: Any,
                      summary: dict[str, Any], added: dict[str, int]) -> None:
    """The object's newest handled change, its last cycle, and its running counts (`added` to them)."""
    await session.execute(text("""
        UPDATE sync_objects SET watermark = coalesce(:w, watermark), last_polled_at = now(),
            last_cycle = CAST(:c AS jsonb),
            counts = counts || coalesce((SELECT jsonb_object_agg(k, coalesce((counts ->> k)::bigint, 0) + v::bigint)
                                         FROM jsonb_each_text(CAST(:n AS jsonb)) AS t(k, v)), '{}'::jsonb)
        WHERE account_id = :a AND object_type = :t"""),
                          {"a": account_id, "t": object_type, "w": watermark, "c": _dumps(summary),
                           "n": _dumps(added)})


async def enabled_objects(session: AsyncSession, account_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"SELECT {OBJECT_COLUMNS} FROM sync_objects WHERE account_id = :a "
                                      "AND enabled ORDER BY object_type"), {"a": account_id})
    return [dict(r) for r in rows.mappings()]


async def object_enabled(session: AsyncSession, account_id: int, object_type: str) -> bool:
    """Whether the object syncs now: enabled on a connected account whose sync has started."""
    return bool((await session.execute(text("""
        SELECT 1 FROM sync_objects o JOIN connections c USING (account_id)
        WHERE o.account_id = :a AND o.object_type = :t AND o.enabled
          AND c.status = 'CONNECTED' AND c.sync_state <> 'NOT_STARTED'"""),
        {"a": account_id, "t": object_type})).scalar())


# -- mappings ------------------------------------------------------------------------------------------------


async def mappings(session: AsyncSession, account_id: int, object_type: str,
                   salesforce_object: str) -> list[dict[str, Any]]:
    rows = await session.execute(text(f"""
        SELECT {MAPPING_COLUMNS} FROM field_mappings
        WHERE account_id = :a AND object_type = :t AND salesforce_object = :s ORDER BY id"""),
                                 {"a": account_id, "t": object_type, "s": salesforce_object})
    return [dict(r) for r in rows.mappings()]


async def get_mapping(session: AsyncSession, account_id: int, object_type: str, mapping_id: int
                      ) -> dict[str, Any] | None:
    row = (await session.execute(text(f"SELECT {MAPPING_COLUMNS} FROM field_mappings WHERE account_id = :a "
                                      "AND object_type = :t AND id = :i"),
                                 {"a": account_id, "t": object_type, "i": mapping_id})).mappings().first()
    return dict(row) if row else None


async def insert_mappings(session: AsyncSession, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that already exist (same property or field) are left as they are. A handful per call: one
    statement each, so every created row comes back."""
    created = []
    for row in rows:
        result = await session.execute(text(f"""
            INSERT INTO field_mappings (account_id, object_type, salesforce_object, property, salesforce_field,
                                        sync_rule, standard, property_type, property_field_type, salesforce_type)
            VALUES (:account_id, :object_type, :salesforce_object, :property, :salesforce_field, :sync_rule,
                    :standard, :property_type, :property_field_type, :salesforce_type)
            ON CONFLICT DO NOTHING
            RETURNING {MAPPING_COLUMNS}"""), row)
        created.extend(dict(r) for r in result.mappings())
    return created


async def insert_mapping(session: AsyncSession, row: dict[str, Any]) -> dict[str, Any] | None:
    created = await insert_mappings(session, [row])
    return created[0] if created else None


async def update_mapping(session: AsyncSession, mapping_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    row = (await session.execute(text(f"UPDATE field_mappings SET {sets}, updated_at = now() WHERE id = :id "
                                      f"RETURNING {MAPPING_COLUMNS}"), {**changes, "id": mapping_id})).mappings().one()
    return dict(row)


async def delete_mapping(session: AsyncSession, mapping_id: int) -> None:
    await session.execute(text("DELETE FROM field_mappings WHERE id = :i"), {"i": mapping_id})


# -- describes -----------------------------------------------------------------------------------------------


async def describe(session: AsyncSession, account_id: int, salesforce_object: str) -> dict[str, Any] | None:
    row = (await session.execute(text("SELECT document, fetched_at FROM describes WHERE account_id = :a "
                                      "AND salesforce_object = :s"), {"a": account_id, "s": salesforce_object})
           ).mappings().first()
    return dict(row) if row else None


async def save_describe(session: AsyncSession, account_id: int, salesforce_object: str,
                        document: dict[str, Any] | None) -> None:
    """`document` None: Salesforce said it has not changed (304); only the time it was checked moves."""
    if document is None:
        await session.execute(text("UPDATE describes SET fetched_at = now() WHERE account_id = :a "
                                   "AND salesforce_object = :s"), {"a": account_id, "s": salesforce_object})
        return
    await session.execute(text("""
        INSERT INTO describes (account_id, salesforce_object, document) VALUES (:a, :s, CAST(:d AS jsonb))
        ON CONFLICT (account_id, salesforce_object) DO UPDATE SET document = excluded.document, fetched_at = now()
        """), {"a": account_id, "s": salesforce_object, "d": _dumps(document)})


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()

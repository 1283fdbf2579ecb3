"""SQL for links (Corral record <-> Salesforce record, each linked once) with their shadows, and create intents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

LINK_COLUMNS = ("account_id, object_type, record_id, salesforce_object, salesforce_id, shadow, salesforce_modstamp, "
                "linked_at, last_synced_at")


@dataclass
class LinkWrite:
    """A link to create or refresh: `shadow` replaces the stored shadow's keys it names."""

    record_id: int
    salesforce_id: str
    shadow: dict[str, str]
    salesforce_modstamp: datetime | None = None


async def for_records(session: AsyncSession, account_id: int, object_type: str,
                      record_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not record_ids:
        return {}
    rows = await session.execute(text(f"SELECT {LINK_COLUMNS} FROM links WHERE account_id = :a AND object_type = :t "
                                      "AND record_id = ANY(:ids)"),
                                 {"a": account_id, "t": object_type, "ids": list(record_ids)})
    return {r["record_id"]: dict(r) for r in rows.mappings()}


async def for_salesforce(session: AsyncSession, account_id: int, salesforce_object: str,
                         salesforce_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not salesforce_ids:
        return {}
    rows = await session.execute(text(f"SELECT {LINK_COLUMNS} FROM links WHERE account_id = :a "
                                      "AND salesforce_object = :s AND salesforce_id = ANY(:ids)"),
                                 {"a": account_id, "s": salesforce_object, "ids": list(salesforce_ids)})
    return {r["salesforce_id"]: dict(r) for r in rows.mappings()}


async def save(session: AsyncSession, account_id: int, object_type: str, salesforce_object: str,
               links: Sequence[LinkWrite]) -> None:
    """Create links or refresh them (shadow keys merged, modstamp only moving forward), in one statement."""
    if not links:
        return
    await session.execute(text("""
        INSERT INTO links AS l (account_id, object_type, record_id, salesforce_object, salesforce_id, shadow,
                                salesforce_modstamp)
        SELECT :a, :t, r.record_id, :s, r.salesforce_id, r.shadow, r.modstamp
        FROM unnest(CAST(:record_ids AS bigint[]), CAST(:salesforce_ids AS text[]), CAST(:shadows AS jsonb[]),
                    CAST(:modstamps AS timestamptz[])) AS r(record_id, salesforce_id, shadow, modstamp)
        ON CONFLICT (account_id, object_type, record_id) DO UPDATE SET
            salesforce_id = excluded.salesforce_id, salesforce_object = excluded.salesforce_object,
            shadow = CASE WHEN l.salesforce_id = excluded.salesforce_id THEN l.shadow || excluded.shadow
                          ELSE excluded.shadow END,
            salesforce_modstamp = CASE WHEN l.salesforce_id = excluded.salesforce_id
                                       THEN greatest(l.salesforce_modstamp, excluded.salesforce_modstamp)
                                       ELSE excluded.salesforce_modstamp END,
            last_synced_at = now()"""), {
        "a": account_id, "t": object_type, "s": salesforce_object,
        "record_ids": [link.record_id for link in links],
        "salesforce_ids": [link.salesforce_id for link in links],
        "shadows": [orjson.dumps(link.shadow).decode() for link in links],
        "modstamps": [link.salesforce_modstamp for link in links],
    })


async def touch_modstamps(session: AsyncSession, account_id: int, salesforce_object: str,
                          modstamps: dict[str, datetime]) -> None:
    """Salesforce rows handled without a change (echoes): only their newest SystemModstamp is kept."""
    if not modstamps:
        return
    await session.execute(text("""
        UPDATE links l SET salesforce_modstamp = greatest(l.salesforce_modstamp, r.modstamp)
        FROM unnest(CAST(:ids AS text[]), CAST(:stamps AS timestamptz[])) AS r(salesforce_id, modstamp)
        WHERE l.account_id = :a AND l.salesforce_object = :s AND l.salesforce_id = r.salesforce_id"""),
                          {"a": account_id, "s": salesforce_object, "ids": list(modstamps),
                           "stamps": list(modstamps.values())})


async def count_handled(session: AsyncSession, account_id: int, salesforce_object: str, *, after: datetime,
                        until: datetime) -> int:
    """Salesforce rows whose change stamped in (after, until] the sync has handled (their link holds the stamp)."""
    return int((await session.execute(text("""
        SELECT count(*) FROM links WHERE account_id = :a AND salesforce_object = :s
          AND salesforce_modstamp > :after AND salesforce_modstamp <= :until"""),
        {"a": account_id, "s": salesforce_object, "after": after, "until": until})).scalar_one())


async def move(session: AsyncSession, account_id: int, object_type: str, from_record: int, to_record: int) -> bool:
    """A merge: the surviving record takes this link (any link it had is replaced)."""
    await session.execute(text("DELETE FROM links WHERE account_id = :a AND object_type = :t AND record_id = :to"),
                          {"a": account_id, "t": object_type, "to": to_record})
    result = await session.execute(text("UPDATE links SET record_id = :to WHERE account_id = :a AND object_type = :t "
                                        "AND record_id = :from"),
                                   {"a": account_id, "t": object_type, "from": from_record, "to": to_record})
    return bool(result.rowcount)


async def delete(session: AsyncSession, account_id: int, object_type: str, record_ids: Sequence[int]) -> None:
    if record_ids:
        await session.execute(text("DELETE FROM links WHERE account_id = :a AND object_type = :t "
                                   "AND record_id = ANY(:ids)"), {"a": account_id, "t": object_type,
                                                                 "ids": list(record_ids)})


async def count_links(session: AsyncSession, account_id: int) -> int:
    return int((await session.execute(text("SELECT count(*) FROM links WHERE account_id = :a"),
                                      {"a": account_id})).scalar_one())


async def counts_by_object(session: AsyncSession, account_id: int) -> dict[str, int]:
    rows = await session.execute(text("SELECT object_type, count(*) FROM links WHERE account_id = :a "
                                      "GROUP BY object_type"), {"a": account_id})
    return {r[0]: int(r[1]) for r in rows}


async def forget_all(session: AsyncSession, account_id: int) -> None:
    for table in ("links", "outbound_queue", "create_intents"):
        await session.execute(text(f"DELETE FROM {table} WHERE account_id = :a"), {"a": account_id})
    await session.execute(text("UPDATE sync_objects SET watermark = NULL WHERE account_id = :a"), {"a": account_id})


# -- create intents ---------------------------------------------------------------------------------------------


async def add_intents(session: AsyncSession, account_id: int, object_type: str, salesforce_object: str,
                      intents: Sequence[tuple[int, str, str]]) -> None:
    """(record id, match field, match value) for each create about to be sent."""
    if not intents:
        return
    await session.execute(text("""
        INSERT INTO create_intents (account_id, object_type, record_id, salesforce_object, match_field, match_value)
        SELECT :a, :t, r.record_id, :s, r.field, r.value
        FROM unnest(CAST(:ids AS bigint[]), CAST(:fields AS text[]), CAST(:values AS text[])) AS r(record_id, field, value)
        ON CONFLICT (account_id, object_type, record_id) DO UPDATE SET
            match_field = excluded.match_field, match_value = excluded.match_value, created_at = now()"""),
                          {"a": account_id, "t": object_type, "s": salesforce_object,
                           "ids": [i[0] for i in intents], "fields": [i[1] for i in intents],
                           "values": [i[2] for i in intents]})


async def intents(session: AsyncSession, account_id: int, object_type: str) -> list[dict[str, Any]]:
    rows = await session.execute(text("""
        SELECT record_id, salesforce_object, match_field, match_value, created_at FROM create_intents
        WHERE account_id = :a AND object_type = :t ORDER BY created_at, record_id"""),
                                 {"a": account_id, "t": object_type})
    return [dict(r) for r in rows.mappings()]


async def clear_intents(session: AsyncSession, account_id: int, object_type: str, record_ids: Sequence[int]) -> None:
    if record_ids:
        await session.execute(text("DELETE FROM create_intents WHERE account_id = :a AND object_type = :t "
                                   "AND record_id = ANY(:ids)"), {"a": account_id, "t": object_type,
                                                                 "ids": list(record_ids)})

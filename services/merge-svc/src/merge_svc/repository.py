"""All SQL of merge-svc."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MERGE_COLUMNS = ("id, account_id, object_type_id, object_type, primary_id, secondary_id, secondary_ids, result_id, status, "
                 "properties_to_keep, plan, merged_ids, merges_involved, error, unmerge_report, created_at, "
                 "applied_at, unmerged_at")


async def lock_records(session: AsyncSession, account_id: int, record_ids: list[int]) -> None:
    """Serialise merges touching the same records: one transaction-scoped lock per record, in id order.

    Taking them in a fixed order means two merges sharing records queue instead of deadlocking. Record ids
    come from one sequence across object types in records-svc, so the key needs no type.
    """
    for record_id in sorted(set(record_ids)):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"merge:{account_id}:{record_id}"},
        )


async def insert_pending(session: AsyncSession, *, account_id: int, object_type_id: str, object_type: str,
                         primary_id: int, secondary_ids: list[int], properties_to_keep: dict[str, str],
                         plan: dict[str, Any], merges_involved: int,
                         snapshots: list[tuple[str, dict[str, Any]]]) -> int:
    """A merge of two records, or of a cluster (several secondaries, listed in `secondary_ids`)."""
    merge_id = (await session.execute(
        text("INSERT INTO merges (account_id, object_type_id, object_type, primary_id, secondary_id, secondary_ids, "
             "properties_to_keep, plan, merges_involved) VALUES (:a, :t, :n, :p, :s, CAST(:ss AS jsonb), "
             "CAST(:keep AS jsonb), CAST(:plan AS jsonb), :m) RETURNING id"),
        {"a": account_id, "t": object_type_id, "n": object_type, "p": primary_id, "s": secondary_ids[0],
         "ss": _dumps([str(i) for i in secondary_ids]) if len(secondary_ids) > 1 else None,
         "keep": _dumps(properties_to_keep), "plan": _dumps(plan), "m": merges_involved},
    )).scalar_one()
    await session.execute(
        text("INSERT INTO merge_snapshots (merge_id, role, record_id, snapshot) "
             "VALUES (:m, :role, :r, CAST(:snap AS jsonb))"),
        [{"m": merge_id, "role": role, "r": int(snap["id"]), "snap": _dumps(snap)} for role, snap in snapshots],
    )
    await session.execute(
        text("INSERT INTO merge_participants (merge_id, account_id, object_type_id, record_id, role) "
             "VALUES (:m, :a, :t, :r, :role)"),
        [{"m": merge_id, "a": account_id, "t": object_type_id, "r": primary_id, "role": "PRIMARY"},
         *({"m": merge_id, "a": account_id, "t": object_type_id, "r": s, "role": "SECONDARY"} for s in secondary_ids)],
    )
    return int(merge_id)


async def mark_applied(session: AsyncSession, *, merge_id: int, account_id: int, object_type_id: str,
                       result_id: int, merged_ids: list[str]) -> None:
    await session.execute(
        text("UPDATE merges SET status = 'APPLIED', result_id = :r, merged_ids = CAST(:ids AS jsonb), "
             "applied_at = now() WHERE id = :m"),
        {"m": merge_id, "r": result_id, "ids": _dumps(merged_ids)},
    )
    await session.execute(
        text("INSERT INTO merge_participants (merge_id, account_id, object_type_id, record_id, role) "
             "VALUES (:m, :a, :t, :r, 'RESULT')"),
        {"m": merge_id, "a": account_id, "t": object_type_id, "r": result_id},
    )


async def mark_failed(session: AsyncSession, *, merge_id: int, error: str) -> None:
    await session.execute(text("UPDATE merges SET status = 'FAILED', error = :e WHERE id = :m"),
                          {"m": merge_id, "e": error})


async def mark_unmerged(session: AsyncSession, *, merge_id: int, report: dict[str, Any]) -> None:
    await session.execute(
        text("UPDATE merges SET status = 'UNMERGED', unmerged_at = now(), unmerge_report = CAST(:r AS jsonb) "
             "WHERE id = :m"),
        {"m": merge_id, "r": _dumps(report)},
    )


async def get_merge(session: AsyncSession, account_id: int, merge_id: int) -> dict[str, Any] | None:
    row = (await session.execute(
        text(f"SELECT {MERGE_COLUMNS} FROM merges WHERE id = :m AND account_id = :a"),
        {"m": merge_id, "a": account_id},
    )).mappings().first()
    return dict(row) if row else None


async def snapshots(session: AsyncSession, merge_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The primary's snapshot and the secondaries' (one, or a cluster's), taken before the merge."""
    rows = (await session.execute(
        text("SELECT role, snapshot FROM merge_snapshots WHERE merge_id = :m ORDER BY record_id"),
        {"m": merge_id})).all()
    primary = next(snap for role, snap in rows if role == "PRIMARY")
    return primary, [snap for role, snap in rows if role == "SECONDARY"]


async def absorbed_in_lineage(session: AsyncSession, account_id: int, object_type_id: str,
                              record_ids: list[int]) -> int:
    """How many records the applied merges behind these records absorbed (a cluster merge of n records
    counts n - 1): the merge limit counts each."""
    return int((await session.execute(text("""
        WITH RECURSIVE lineage(merge_id) AS (
            SELECT p.merge_id FROM merge_participants p
             WHERE p.account_id = :a AND p.object_type_id = :t AND p.record_id = ANY(:ids) AND p.role = 'RESULT'
            UNION
            SELECT p.merge_id
              FROM lineage l
              JOIN merge_participants src ON src.merge_id = l.merge_id AND src.role IN ('PRIMARY', 'SECONDARY')
              JOIN merge_participants p ON p.account_id = :a AND p.record_id = src.record_id AND p.role = 'RESULT'
        )
        SELECT coalesce(sum(n - 1), 0) FROM (
            SELECT count(*) AS n FROM merge_participants p JOIN merges m ON m.id = p.merge_id
             WHERE p.merge_id IN (SELECT merge_id FROM lineage) AND p.role IN ('PRIMARY', 'SECONDARY')
               AND m.status = 'APPLIED'
             GROUP BY p.merge_id) absorbed
    """), {"a": account_id, "t": object_type_id, "ids": record_ids})).scalar_one())


async def merges_of_record(session: AsyncSession, account_id: int, object_type_id: str | None,
                           record_id: int, *, limit: int) -> list[dict[str, Any]]:
    """Every merge the record took part in, and those of the records it was merged from (its lineage)."""
    type_filter = "AND p.object_type_id = :t" if object_type_id else ""
    rows = (await session.execute(
        text(f"""
            WITH RECURSIVE lineage(merge_id) AS (
                SELECT p.merge_id FROM merge_participants p
                 WHERE p.account_id = :a AND p.record_id = :r {type_filter}
                UNION
                SELECT p.merge_id
                  FROM lineage l
                  JOIN merge_participants src ON src.merge_id = l.merge_id AND src.role IN ('PRIMARY', 'SECONDARY')
                  JOIN merge_participants p ON p.account_id = :a AND p.record_id = src.record_id
                                           AND p.role = 'RESULT'
            )
            SELECT {MERGE_COLUMNS} FROM merges WHERE id IN (SELECT merge_id FROM lineage)
             ORDER BY id DESC LIMIT :limit
        """),
        {"a": account_id, "t": object_type_id, "r": record_id, "limit": limit},
    )).mappings().all()
    return [dict(r) for r in rows]


async def later_merge_of(session: AsyncSession, account_id: int, object_type_id: str, record_id: int,
                         after_merge_id: int) -> int | None:
    """An applied merge that absorbed this record after the given one (it must be unmerged first)."""
    return (await session.execute(
        text("SELECT m.id FROM merges m JOIN merge_participants p ON p.merge_id = m.id "
             "WHERE p.account_id = :a AND p.object_type_id = :t AND p.record_id = :r "
             "AND p.role IN ('PRIMARY', 'SECONDARY') AND m.status IN ('APPLIED', 'PENDING') AND m.id > :after "
             "ORDER BY m.id LIMIT 1"),
        {"a": account_id, "t": object_type_id, "r": record_id, "after": after_merge_id},
    )).scalar_one_or_none()


async def rule_overrides(session: AsyncSession, account_id: int, object_type_id: str) -> dict[str, str]:
    rows = (await session.execute(
        text("SELECT property, strategy FROM merge_rules WHERE account_id = :a AND object_type_id = :t"),
        {"a": account_id, "t": object_type_id},
    )).all()
    return {p: s for p, s in rows}


async def put_rule(session: AsyncSession, account_id: int, object_type_id: str, prop: str, strategy: str) -> None:
    await session.execute(
        text("INSERT INTO merge_rules (account_id, object_type_id, property, strategy) VALUES (:a, :t, :p, :s) "
             "ON CONFLICT (account_id, object_type_id, property) DO UPDATE SET strategy = EXCLUDED.strategy, "
             "updated_at = now()"),
        {"a": account_id, "t": object_type_id, "p": prop, "s": strategy},
    )


async def delete_rule(session: AsyncSession, account_id: int, object_type_id: str, prop: str) -> None:
    await session.execute(
        text("DELETE FROM merge_rules WHERE account_id = :a AND object_type_id = :t AND property = :p"),
        {"a": account_id, "t": object_type_id, "p": prop},
    )


def _dumps(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def stale_pending(session: AsyncSession, *, older_than_seconds: float, limit: int = 100) -> list[dict[str, Any]]:
    rows = (await session.execute(
        text(f"SELECT {MERGE_COLUMNS} FROM merges WHERE status = 'PENDING' "
             "AND created_at < now() - make_interval(secs => :age) ORDER BY id LIMIT :limit"),
        {"age": older_than_seconds, "limit": limit},
    )).mappings().all()
    return [dict(r) for r in rows]


async def try_lock_records(session: AsyncSession, account_id: int, record_ids: list[int]) -> bool:
    """The same locks as lock_records, without waiting: False when a merge holds one of them."""
    for record_id in sorted(set(record_ids)):
        got = (await session.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"merge:{account_id}:{record_id}"},
        )).scalar_one()
        if not got:
            return False
    return True


async def lock_merge_row(session: AsyncSession, merge_id: int) -> dict[str, Any] | None:
    row = (await session.execute(text(f"SELECT {MERGE_COLUMNS} FROM merges WHERE id = :m FOR UPDATE"),
                                 {"m": merge_id})).mappings().first()
    return dict(row) if row else None

"""SQL for the outbound queue: one row per Corral record with changes waiting, however many events it had."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def enqueue(session: AsyncSession, account_id: int, object_type: str, record_ids: Sequence[int],
                  reason: str, *, changed_at: datetime | None = None) -> None:
    """Coalesce: a record already waiting keeps its first queue time; a new change makes it due at once
    (fixing a refused value is retried right away, not after the error's backoff)."""
    if not record_ids:
        return
    await session.execute(text("""
        INSERT INTO outbound_queue AS q (account_id, object_type, record_id, reason, changed_at)
        SELECT :a, :t, r, :reason, coalesce(CAST(:changed AS timestamptz), now()) FROM unnest(CAST(:ids AS bigint[])) AS r
        ON CONFLICT (account_id, object_type, record_id) DO UPDATE SET
            changed_at = greatest(q.changed_at, excluded.changed_at), next_attempt_at = least(q.next_attempt_at, now()),
            reason = excluded.reason"""),
                          {"a": account_id, "t": object_type, "ids": sorted(set(record_ids)), "reason": reason,
                           "changed": changed_at})


async def due(session: AsyncSession, account_id: int, object_type: str, limit: int, *,
              min_age_seconds: float = 0.0) -> list[dict[str, Any]]:
    """Rows due now; with `min_age_seconds`, only once the oldest has waited that long (changes gather into
    one flush instead of trickling out one call at a time)."""
    rows = await session.execute(text("""
        SELECT record_id, reason, queued_at, changed_at, attempts FROM outbound_queue
        WHERE account_id = :a AND object_type = :t AND next_attempt_at <= now()
          AND EXISTS (SELECT 1 FROM outbound_queue o WHERE o.account_id = :a AND o.object_type = :t
                      AND o.next_attempt_at <= now()
                      AND o.queued_at <= now() - make_interval(secs => :age))
        ORDER BY next_attempt_at, record_id LIMIT :l"""),
                                 {"a": account_id, "t": object_type, "l": limit, "age": min_age_seconds})
    return [dict(r) for r in rows.mappings()]


async def rows_for(session: AsyncSession, account_id: int, object_type: str,
                   record_ids: Sequence[int]) -> list[dict[str, Any]]:
    """These records, queued or not (a resync asked for them): queued ones keep their row."""
    rows = await session.execute(text("""
        SELECT r AS record_id, coalesce(q.reason, 'RESYNC') AS reason, coalesce(q.queued_at, now()) AS queued_at,
               coalesce(q.changed_at, now()) AS changed_at, coalesce(q.attempts, 0) AS attempts
        FROM unnest(CAST(:ids AS bigint[])) AS r
        LEFT JOIN outbound_queue q ON q.account_id = :a AND q.object_type = :t AND q.record_id = r"""),
                                 {"a": account_id, "t": object_type, "ids": list(record_ids)})
    return [dict(r) for r in rows.mappings()]


async def done(session: AsyncSession, account_id: int, object_type: str, seen: dict[int, datetime]) -> None:
    """Remove rows handled; a row changed again after it was read stays for the next flush."""
    if not seen:
        return
    await session.execute(text("""
        DELETE FROM outbound_queue q USING unnest(CAST(:ids AS bigint[]), CAST(:stamps AS timestamptz[])) AS r(id, stamp)
        WHERE q.account_id = :a AND q.object_type = :t AND q.record_id = r.id AND q.changed_at <= r.stamp"""),
                          {"a": account_id, "t": object_type, "ids": list(seen), "stamps": list(seen.values())})


async def retry_later(session: AsyncSession, account_id: int, object_type: str,
                      retries: dict[int, datetime]) -> None:
    if not retries:
        return
    await session.execute(text("""
        UPDATE outbound_queue q SET attempts = q.attempts + 1, next_attempt_at = r.at
        FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[])) AS r(id, at)
        WHERE q.account_id = :a AND q.object_type = :t AND q.record_id = r.id"""),
                          {"a": account_id, "t": object_type, "ids": list(retries), "ats": list(retries.values())})


async def oldest_due(session: AsyncSession, account_id: int) -> datetime | None:
    return (await session.execute(text("SELECT min(changed_at) FROM outbound_queue WHERE account_id = :a "
                                       "AND next_attempt_at <= now()"), {"a": account_id})).scalar()


async def counts(session: AsyncSession, account_id: int) -> dict[str, int]:
    rows = await session.execute(text("SELECT object_type, count(*) FROM outbound_queue WHERE account_id = :a "
                                      "GROUP BY object_type"), {"a": account_id})
    return {r[0]: int(r[1]) for r in rows}


async def move(session: AsyncSession, account_id: int, object_type: str, from_records: Sequence[int],
               to_record: int) -> None:
    """A merge: changes waiting for absorbed records now wait for the surviving one."""
    await session.execute(text("DELETE FROM outbound_queue WHERE account_id = :a AND object_type = :t "
                               "AND record_id = ANY(:ids)"), {"a": account_id, "t": object_type,
                                                             "ids": list(from_records)})
    await enqueue(session, account_id, object_type, [to_record], "MERGED")

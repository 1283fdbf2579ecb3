"""All SQL of the import service."""

from __future__ import annotations

from typing import Any

import orjson
from crm_common.inputs import printable
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ACTIVE_STATES = ("STARTED", "PROCESSING")
RUNNABLE_STATES = ("STARTED", "DEFERRED", "PROCESSING")
FINAL_STATES = ("DONE", "FAILED", "CANCELED", "REVERTED")
# Claims are serialised by this advisory lock so "at most N processing per account" holds across replicas.
CLAIM_LOCK = 7_102_001
# Each worker holds (LIVENESS_LOCKS, hashtext(owner)) for as long as its process lives.
LIVENESS_LOCKS = 7_102_002


async def active_count(session: AsyncSession, account_id: int) -> int:
    return int((await session.execute(text(
        "SELECT count(*) FROM imports WHERE account_id = :a AND state IN ('STARTED', 'PROCESSING')"),
        {"a": account_id})).scalar_one())


async def insert_import(session: AsyncSession, *, account_id: int, name: str, state: str, request: dict[str, Any],
                        mapped: list[str], counters: dict[str, int], trace_parent: str | None = None
                        ) -> dict[str, Any]:
    row = (await session.execute(text("""
        INSERT INTO imports (account_id, name, state, request, mapped_object_type_ids, counters, trace_parent)
        VALUES (:a, :n, :s, CAST(:r AS jsonb), :m, CAST(:c AS jsonb), :t) RETURNING *"""),
        {"a": account_id, "n": name, "s": state, "r": orjson.dumps(request).decode(), "m": mapped,
         "c": orjson.dumps(counters).decode(), "t": trace_parent})).mappings().one()
    await session.execute(text("INSERT INTO import_checkpoints (import_id, counters) VALUES (:i, CAST(:c AS jsonb))"),
                          {"i": row["id"], "c": orjson.dumps(counters).decode()})
    return dict(row)


async def insert_file(session: AsyncSession, *, import_id: int, position: int, file_name: str, path: str,
                      size: int, file_format: str) -> int:
    return int((await session.execute(text("""
        INSERT INTO import_files (import_id, position, file_name, path, size_bytes, file_format)
        VALUES (:i, :p, :n, :path, :s, :f) RETURNING id"""),
        {"i": import_id, "p": position, "n": file_name, "path": path, "s": size, "f": file_format})).scalar_one())


async def get_import(session: AsyncSession, account_id: int, import_id: int, *, for_update: bool = False
                     ) -> dict[str, Any] | None:
    sql = "SELECT * FROM imports WHERE id = :i AND account_id = :a" + (" FOR UPDATE" if for_update else "")
    row = (await session.execute(text(sql), {"i": import_id, "a": account_id})).mappings().first()
    return dict(row) if row else None


async def load_import(session: AsyncSession, import_id: int) -> dict[str, Any] | None:
    row = (await session.execute(text("SELECT * FROM imports WHERE id = :i"), {"i": import_id})).mappings().first()
    return dict(row) if row else None


async def trace_parent(session: AsyncSession, import_id: int) -> str | None:
    return (await session.execute(text("SELECT trace_parent FROM imports WHERE id = :i"),
                                  {"i": import_id})).scalar_one_or_none()


async def file_rows(session: AsyncSession, import_id: int) -> list[dict[str, Any]]:
    rows = (await session.execute(text("SELECT * FROM import_files WHERE import_id = :i ORDER BY position"),
                                  {"i": import_id})).mappings().all()
    return [dict(r) for r in rows]


async def file_ids(session: AsyncSession, import_ids: list[int]) -> dict[int, list[int]]:
    if not import_ids:
        return {}
    rows = (await session.execute(text(
        "SELECT import_id, id FROM import_files WHERE import_id = ANY(:ids) ORDER BY import_id, position"),
        {"ids": import_ids})).all()
    out: dict[int, list[int]] = {}
    for import_id, file_id in rows:
        out.setdefault(import_id, []).append(file_id)
    return out


async def live_counters(session: AsyncSession, import_ids: list[int]) -> dict[int, dict[str, int]]:
    if not import_ids:
        return {}
    rows = (await session.execute(text(
        "SELECT import_id, counters FROM import_checkpoints WHERE import_id = ANY(:ids)"), {"ids": import_ids})).all()
    return {r[0]: dict(r[1]) for r in rows}


async def list_imports(session: AsyncSession, account_id: int, *, after: int | None, before: int | None,
                       limit: int) -> list[dict[str, Any]]:
    # Newest first, as HubSpot lists them; `after` is the id of the last one seen.
    clauses = ["account_id = :a"]
    params: dict[str, Any] = {"a": account_id, "l": limit}
    if after is not None:
        clauses.append("id < :after")
        params["after"] = after
    if before is not None:
        clauses.append("id > :before")
        params["before"] = before
    rows = (await session.execute(text(
        f"SELECT * FROM imports WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT :l"), params)).mappings().all()
    return [dict(r) for r in rows]


async def set_state(session: AsyncSession, import_id: int, state: str, *, completed: bool = False,
                    failure: str | None = None, counters: dict[str, int] | None = None) -> dict[str, Any]:
    row = (await session.execute(text("""
        UPDATE imports SET state = :s, updated_at = now(), lease_owner = CASE WHEN :done THEN NULL ELSE lease_owner END,
               completed_at = CASE WHEN :done THEN coalesce(completed_at, now()) ELSE completed_at END,
               failure = coalesce(:f, failure), counters = coalesce(CAST(:c AS jsonb), counters)
        WHERE id = :i RETURNING *"""),
        {"s": state, "done": completed, "f": failure, "i": import_id,
         "c": orjson.dumps(counters).decode() if counters is not None else None})).mappings().one()
    return dict(row)


async def reclaim_from_dead_owners(session: AsyncSession, *, owner: str) -> int:
    """Imports whose owner's process is gone (its liveness lock is free) become claimable at once.

    A live worker holds its lock for its whole life, so taking the same lock here succeeds only when the
    owner died (kill -9, a lost node: the database ended its session). The lease is only the fallback.
    """
    owners = (await session.execute(text("""
        SELECT DISTINCT lease_owner FROM imports
        WHERE state = 'PROCESSING' AND lease_owner IS NOT NULL AND lease_owner <> :me AND lease_until >= now()"""),
        {"me": owner})).scalars().all()
    dead = [o for o in owners if (await session.execute(
        text("SELECT pg_try_advisory_xact_lock(:c, hashtext(:o))"), {"c": LIVENESS_LOCKS, "o": o})).scalar()]
    if not dead:
        return 0
    result = await session.execute(text("""
        UPDATE imports SET lease_owner = NULL, lease_until = now(), updated_at = now()
        WHERE state = 'PROCESSING' AND lease_owner = ANY(:dead)"""), {"dead": dead})
    return result.rowcount or 0


# Live imports of the candidate's account (other than itself), for the per-account limit and fairness.
_RUNNING_IN_ACCOUNT = """(SELECT count(*) FROM imports p WHERE p.account_id = i.account_id AND p.id <> i.id
                          AND p.state = 'PROCESSING' AND p.lease_until >= now())"""
_CLAIMABLE = "(i.state IN ('STARTED', 'DEFERRED') OR (i.state = 'PROCESSING' AND i.lease_until < now()))"


async def claim_next(session: AsyncSession, *, owner: str, lease_seconds: float, per_account: int
                     ) -> dict[str, Any] | None:
    """A runnable import whose account has a free slot, leased to `owner`.

    The account running the fewest imports goes first, then the import waiting longest: an import
    handed back for another account's turn (updated just now) queues behind the ones that waited.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
    row = (await session.execute(text(f"""
        WITH candidate AS (
            SELECT i.id FROM imports i
            WHERE {_CLAIMABLE} AND {_RUNNING_IN_ACCOUNT} < :per_account
            ORDER BY {_RUNNING_IN_ACCOUNT}, i.updated_at, i.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE imports SET state = 'PROCESSING', lease_owner = :owner,
               lease_until = now() + make_interval(secs => :lease), updated_at = now(),
               started_at = coalesce(started_at, now())
        FROM candidate WHERE imports.id = candidate.id
        RETURNING imports.*, (imports.started_at = now()) AS first_start"""),
        {"owner": owner, "lease": lease_seconds, "per_account": per_account})).mappings().first()
    return dict(row) if row else None


async def defer_waiting(session: AsyncSession, per_account: int) -> None:
    """STARTED imports of accounts already running their maximum show as DEFERRED."""
    await session.execute(text("""
        UPDATE imports i SET state = 'DEFERRED', updated_at = now()
        WHERE i.state = 'STARTED'
          AND (SELECT count(*) FROM imports p WHERE p.account_id = i.account_id AND p.state = 'PROCESSING'
                 AND p.lease_until >= now()) >= :n"""), {"n": per_account})


async def another_account_starves(session: AsyncSession, account_id: int) -> bool:
    """Whether an import of another account waits to run while that account runs none."""
    return bool((await session.execute(text(f"""
        SELECT EXISTS (SELECT 1 FROM imports i WHERE i.account_id <> :a AND {_CLAIMABLE}
                         AND {_RUNNING_IN_ACCOUNT} = 0)"""), {"a": account_id})).scalar())


async def get_checkpoint(session: AsyncSession, import_id: int) -> dict[str, Any]:
    row = (await session.execute(text("SELECT * FROM import_checkpoints WHERE import_id = :i"),
                                 {"i": import_id})).mappings().first()
    return dict(row) if row else {"file_position": 0, "rows_done": 0, "batches": 0, "counters": {},
                                  "batch_size": None, "parallel_calls": None, "failed_attempts": 0}


async def pin_batching(session: AsyncSession, import_id: int, *, batch_size: int, parallel_calls: int) -> None:
    await session.execute(text("""
        UPDATE import_checkpoints SET batch_size = :b, parallel_calls = :p
        WHERE import_id = :i AND batch_size IS NULL"""), {"b": batch_size, "p": parallel_calls, "i": import_id})


async def lock_for_checkpoint(session: AsyncSession, import_id: int, owner: str) -> bool:
    """True while this worker still owns the import (not canceled, not taken over)."""
    row = (await session.execute(text("SELECT state, lease_owner FROM imports WHERE id = :i FOR UPDATE"),
                                 {"i": import_id})).first()
    return bool(row and row[0] == "PROCESSING" and row[1] == owner)


async def save_checkpoint(session: AsyncSession, import_id: int, *, file_position: int, rows_done: int,
                          batches: int, counters: dict[str, int], lease_seconds: float) -> None:
    await session.execute(text("""
        UPDATE import_checkpoints SET file_position = :p, rows_done = :r, batches = :b, counters = CAST(:c AS jsonb),
               failed_attempts = 0, updated_at = now() WHERE import_id = :i"""),
        {"p": file_position, "r": rows_done, "b": batches, "c": orjson.dumps(counters).decode(), "i": import_id})
    await session.execute(text("""
        UPDATE imports SET lease_until = now() + make_interval(secs => :lease), updated_at = now() WHERE id = :i"""),
        {"lease": lease_seconds, "i": import_id})


async def release_lease(session: AsyncSession, import_id: int, *, retry_in: float) -> None:
    """Still PROCESSING, owned by nobody: claimable again once `retry_in` seconds have passed."""
    await session.execute(text("""
        UPDATE imports SET lease_owner = NULL, lease_until = now() + make_interval(secs => :s), updated_at = now()
        WHERE id = :i"""), {"s": retry_in, "i": import_id})


async def count_attempt(session: AsyncSession, import_id: int, *, failed: bool) -> int:
    """How many attempts in a row failed on the current batch, this one counted when `failed`."""
    return int((await session.execute(text("""
        UPDATE import_checkpoints SET failed_attempts = failed_attempts + CASE WHEN :f THEN 1 ELSE 0 END
        WHERE import_id = :i RETURNING failed_attempts"""), {"f": failed, "i": import_id})).scalar_one())


async def release_owned(session: AsyncSession, owner: str) -> None:
    await session.execute(text("""
        UPDATE imports SET lease_owner = NULL, lease_until = now(), updated_at = now()
        WHERE lease_owner = :o AND state = 'PROCESSING'"""), {"o": owner})


async def insert_errors(session: AsyncSession, import_id: int, errors: list[dict[str, Any]]) -> None:
    if not errors:
        return
    await session.execute(text("""
        INSERT INTO import_errors (import_id, file_id, line_number, error_type, message, invalid_value,
                                   column_number, column_name, object_type_id, row_data)
        VALUES (:import_id, :file_id, :line_number, :error_type, :message, :invalid_value, :column_number,
                :column_name, :object_type_id, CAST(:row_data AS jsonb))"""),
        [_storable_error(import_id, e) for e in errors])


def _storable_error(import_id: int, error: dict[str, Any]) -> dict[str, Any]:
    """An error row Postgres can store: a NUL or unpaired surrogate in the file is shown as its escape."""
    return {**error, "import_id": import_id, "message": printable(error["message"] or ""),
            "invalid_value": printable(error["invalid_value"]) if error.get("invalid_value") is not None else None,
            "column_name": printable(error["column_name"]) if error.get("column_name") is not None else None,
            "row_data": orjson.dumps([printable(str(c)) for c in error.get("row_data") or []]).decode()}


async def list_errors(session: AsyncSession, import_id: int, *, after: int, limit: int) -> list[dict[str, Any]]:
    rows = (await session.execute(text("""
        SELECT * FROM import_errors WHERE import_id = :i AND id > :after ORDER BY id LIMIT :l"""),
        {"i": import_id, "after": after, "l": limit})).mappings().all()
    return [dict(r) for r in rows]


async def expired_files(session: AsyncSession, *, keep_seconds: float, limit: int) -> list[dict[str, Any]]:
    """Kept files of imports that ended more than `keep_seconds` ago, locked for this sweep (replicas skip them)."""
    rows = (await session.execute(text("""
        SELECT f.id, f.path FROM import_files f JOIN imports i ON i.id = f.import_id
        WHERE f.deleted_at IS NULL AND i.state IN ('DONE', 'FAILED', 'CANCELED', 'REVERTED')
          AND coalesce(i.completed_at, i.updated_at) < now() - make_interval(secs => :keep)
        ORDER BY f.id LIMIT :limit
        FOR UPDATE OF f SKIP LOCKED"""), {"keep": keep_seconds, "limit": limit})).mappings().all()
    return [dict(r) for r in rows]


async def mark_files_deleted(session: AsyncSession, file_ids: list[int]) -> None:
    await session.execute(text("UPDATE import_files SET deleted_at = now() WHERE id = ANY(:ids)"), {"ids": file_ids})


async def known_file_paths(session: AsyncSession, paths: list[str]) -> set[str]:
    """Which of these stored paths belong to an import (swept files included)."""
    if not paths:
        return set()
    rows = await session.execute(text("SELECT path FROM import_files WHERE path = ANY(:p)"), {"p": paths})
    return {r[0] for r in rows}

"""All SQL of duplicate suggestions: settings, scan jobs, models, the block-key index, pairs, clusters,
dismissals. Bulk writes (a scan's index and pairs) go through COPY."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

JOB_COLUMNS = ("id, account_id, object_type_id, object_type, status, phase, progress, settings, error, "
               "created_at, started_at, finished_at")
# A RUNNING job whose worker has not reported for this long is taken over by another worker.
STALE_JOB_SECONDS = 120


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _raw(session: AsyncSession) -> Any:
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


# --- settings -------------------------------------------------------------------------------------------


async def get_settings(session: AsyncSession, account_id: int, object_type_id: str) -> dict[str, Any] | None:
    return (await session.execute(
        text("SELECT settings FROM duplicate_settings WHERE account_id = :a AND object_type_id = :t"),
        {"a": account_id, "t": object_type_id})).scalar_one_or_none()


async def put_settings(session: AsyncSession, account_id: int, object_type_id: str, settings: dict[str, Any]) -> None:
    await session.execute(
        text("INSERT INTO duplicate_settings (account_id, object_type_id, settings) VALUES (:a, :t, CAST(:s AS jsonb)) "
             "ON CONFLICT (account_id, object_type_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = now()"),
        {"a": account_id, "t": object_type_id, "s": _dumps(settings)})


# --- jobs -----------------------------------------------------------------------------------------------


async def create_job(session: AsyncSession, *, account_id: int, object_type_id: str, object_type: str,
                     settings: dict[str, Any]) -> dict[str, Any]:
    row = (await session.execute(
        text(f"INSERT INTO duplicate_jobs (account_id, object_type_id, object_type, settings) "
             f"VALUES (:a, :t, :n, CAST(:s AS jsonb)) RETURNING {JOB_COLUMNS}"),
        {"a": account_id, "t": object_type_id, "n": object_type, "s": _dumps(settings)})).mappings().one()
    return dict(row)


async def open_job(session: AsyncSession, account_id: int, object_type_id: str) -> dict[str, Any] | None:
    row = (await session.execute(
        text(f"SELECT {JOB_COLUMNS} FROM duplicate_jobs WHERE account_id = :a AND object_type_id = :t "
             "AND status IN ('PENDING', 'RUNNING') ORDER BY id LIMIT 1"),
        {"a": account_id, "t": object_type_id})).mappings().first()
    return dict(row) if row else None


async def get_job(session: AsyncSession, account_id: int, job_id: int) -> dict[str, Any] | None:
    row = (await session.execute(text(f"SELECT {JOB_COLUMNS} FROM duplicate_jobs WHERE id = :j AND account_id = :a"),
                                 {"j": job_id, "a": account_id})).mappings().first()
    return dict(row) if row else None


async def claim_job(session: AsyncSession) -> dict[str, Any] | None:
    """The oldest waiting job, or a running one whose worker went silent; locked for this worker."""
    row = (await session.execute(text(f"""
        UPDATE duplicate_jobs SET status = 'RUNNING', started_at = coalesce(started_at, now()), heartbeat_at = now()
         WHERE id = (SELECT id FROM duplicate_jobs
                      WHERE status = 'PENDING'
                         OR (status = 'RUNNING' AND heartbeat_at < now() - make_interval(secs => :stale))
                      ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING {JOB_COLUMNS}"""), {"stale": STALE_JOB_SECONDS})).mappings().first()
    return dict(row) if row else None


async def report_job(session: AsyncSession, job_id: int, *, phase: str, progress: dict[str, Any]) -> None:
    await session.execute(
        text("UPDATE duplicate_jobs SET phase = :p, progress = CAST(:g AS jsonb), heartbeat_at = now() WHERE id = :j"),
        {"j": job_id, "p": phase, "g": _dumps(progress)})


async def touch_job(session: AsyncSession, job_id: int) -> None:
    await session.execute(text("UPDATE duplicate_jobs SET heartbeat_at = now() WHERE id = :j AND status = 'RUNNING'"),
                          {"j": job_id})


async def finish_job(session: AsyncSession, job_id: int, *, status: str, progress: dict[str, Any],
                     error: str | None = None) -> None:
    await session.execute(
        text("UPDATE duplicate_jobs SET status = :s, phase = NULL, progress = CAST(:g AS jsonb), error = :e, "
             "finished_at = now() WHERE id = :j"),
        {"j": job_id, "s": status, "g": _dumps(progress), "e": error})


# --- models ---------------------------------------------------------------------------------------------


async def put_model(session: AsyncSession, *, account_id: int, object_type_id: str, settings: dict[str, Any],
                    model: dict[str, Any], splink_model: dict[str, Any], job_id: int | None,
                    scanned_from: Any) -> None:
    await session.execute(
        text("INSERT INTO duplicate_models (account_id, object_type_id, settings, model, splink_model, job_id, "
             "scanned_from) VALUES (:a, :t, CAST(:s AS jsonb), CAST(:m AS jsonb), CAST(:sm AS jsonb), :j, :f) "
             "ON CONFLICT (account_id, object_type_id) DO UPDATE SET settings = EXCLUDED.settings, "
             "model = EXCLUDED.model, splink_model = EXCLUDED.splink_model, job_id = EXCLUDED.job_id, "
             "scanned_from = EXCLUDED.scanned_from, trained_at = now()"),
        {"a": account_id, "t": object_type_id, "s": _dumps(settings), "m": _dumps(model),
         "sm": _dumps(splink_model), "j": job_id, "f": scanned_from})


async def get_model(session: AsyncSession, account_id: int, object_type_id: str) -> dict[str, Any] | None:
    row = (await session.execute(
        text("SELECT settings, model, scanned_from FROM duplicate_models WHERE account_id = :a AND object_type_id = :t"),
        {"a": account_id, "t": object_type_id})).mappings().first()
    return dict(row) if row else None


# --- the block-key index ------------------------------------------------------------------------------


async def clear_index(session: AsyncSession, account_id: int, object_type_id: str) -> None:
    for table in ("duplicate_block_keys", "duplicate_records"):
        await session.execute(text(f"DELETE FROM {table} WHERE account_id = :a AND object_type_id = :t"),
                              {"a": account_id, "t": object_type_id})


async def copy_index(session: AsyncSession, account_id: int, object_type_id: str,
                     rows: Sequence[tuple[int, dict[str, Any], str, Sequence[str]]]) -> None:
    """(record id, features, fingerprint, block keys) of records not in the index yet."""
    raw = await _raw(session)
    await raw.copy_records_to_table(
        "duplicate_records", columns=("account_id", "object_type_id", "record_id", "features", "fingerprint"),
        records=[(account_id, object_type_id, rid, _dumps(feats), fp) for rid, feats, fp, _ in rows])
    await raw.copy_records_to_table(
        "duplicate_block_keys", columns=("account_id", "object_type_id", "block_key", "record_id"),
        records=[(account_id, object_type_id, key, rid) for rid, _, _, keys in rows for key in keys])


async def remove_from_index(session: AsyncSession, account_id: int, object_type_id: str,
                            record_ids: Sequence[int]) -> None:
    for table in ("duplicate_block_keys", "duplicate_records"):
        await session.execute(
            text(f"DELETE FROM {table} WHERE account_id = :a AND object_type_id = :t AND record_id = ANY(:ids)"),
            {"a": account_id, "t": object_type_id, "ids": list(record_ids)})


async def upsert_indexed(session: AsyncSession, account_id: int, object_type_id: str, record_id: int,
                         features: dict[str, Any], fingerprint: str, keys: Sequence[str]) -> None:
    await remove_from_index(session, account_id, object_type_id, [record_id])
    await session.execute(
        text("INSERT INTO duplicate_records (account_id, object_type_id, record_id, features, fingerprint) "
             "VALUES (:a, :t, :r, CAST(:f AS jsonb), :fp)"),
        {"a": account_id, "t": object_type_id, "r": record_id, "f": _dumps(features), "fp": fingerprint})
    if keys:
        await session.execute(
            text("INSERT INTO duplicate_block_keys (account_id, object_type_id, block_key, record_id) "
                 "SELECT :a, :t, k, :r FROM unnest(CAST(:keys AS text[])) AS k"),
            {"a": account_id, "t": object_type_id, "r": record_id, "keys": list(keys)})


async def candidates(session: AsyncSession, account_id: int, object_type_id: str, keys: Sequence[str], *,
                     max_block: int, exclude: int | None = None) -> dict[int, tuple[dict[str, Any], str]]:
    """Records sharing a block key (keys held by more than max_block records are skipped), with their
    features and fingerprints. One index range scan per key, each stopping after max_block + 1 rows."""
    if not keys:
        return {}
    rows = (await session.execute(text("""
        WITH filed AS (
            SELECT k.key, f.record_id
              FROM unnest(CAST(:keys AS text[])) AS k(key)
              CROSS JOIN LATERAL (
                  SELECT record_id FROM duplicate_block_keys
                   WHERE account_id = :a AND object_type_id = :t AND block_key = k.key
                   LIMIT :cap) f
        ), usable AS (
            SELECT DISTINCT record_id FROM filed
             WHERE key IN (SELECT key FROM filed GROUP BY key HAVING count(*) < :cap)
        )
        SELECT r.record_id, r.features, r.fingerprint FROM duplicate_records r JOIN usable USING (record_id)
         WHERE r.account_id = :a AND r.object_type_id = :t AND r.record_id IS DISTINCT FROM :x
    """), {"a": account_id, "t": object_type_id, "keys": list(keys), "cap": max_block + 1,
           "x": exclude})).all()
    return {int(r[0]): (r[1], r[2]) for r in rows}


async def indexed(session: AsyncSession, account_id: int, object_type_id: str,
                  record_ids: Sequence[int]) -> dict[int, tuple[dict[str, Any], str]]:
    rows = (await session.execute(
        text("SELECT record_id, features, fingerprint FROM duplicate_records "
             "WHERE account_id = :a AND object_type_id = :t AND record_id = ANY(:ids)"),
        {"a": account_id, "t": object_type_id, "ids": list(record_ids)})).all()
    return {int(r[0]): (r[1], r[2]) for r in rows}


# --- pairs and clusters ----------------------------------------------------------------------------


async def clear_suggestions(session: AsyncSession, account_id: int, object_type_id: str) -> None:
    for table in ("duplicate_pairs", "duplicate_clusters"):
        await session.execute(text(f"DELETE FROM {table} WHERE account_id = :a AND object_type_id = :t"),
                              {"a": account_id, "t": object_type_id})


async def dismissed(session: AsyncSession, account_id: int, object_type_id: str,
                    record_ids: Iterable[int] | None = None) -> dict[tuple[int, int], tuple[str, str]]:
    """Dismissed pairs with the fingerprints their records had (all of the type, or those touching ids)."""
    where, params = "", {"a": account_id, "t": object_type_id}
    if record_ids is not None:
        where = "AND (left_id = ANY(:ids) OR right_id = ANY(:ids))"
        params["ids"] = list(record_ids)
    rows = (await session.execute(
        text(f"SELECT left_id, right_id, left_fingerprint, right_fingerprint FROM duplicate_dismissals "
             f"WHERE account_id = :a AND object_type_id = :t {where}"), params)).all()
    return {(int(r[0]), int(r[1])): (r[2], r[3]) for r in rows}


async def dismiss_pairs(session: AsyncSession, account_id: int, object_type_id: str,
                        pairs: Sequence[tuple[int, int, str, str]]) -> None:
    await session.execute(
        text("INSERT INTO duplicate_dismissals (account_id, object_type_id, left_id, right_id, left_fingerprint, "
             "right_fingerprint) SELECT :a, :t, l, r, lf, rf FROM unnest(CAST(:l AS bigint[]), "
             "CAST(:r AS bigint[]), CAST(:lf AS text[]), CAST(:rf AS text[])) AS d(l, r, lf, rf) "
             "ON CONFLICT (account_id, object_type_id, left_id, right_id) DO UPDATE SET "
             "left_fingerprint = EXCLUDED.left_fingerprint, right_fingerprint = EXCLUDED.right_fingerprint, "
             "dismissed_at = now()"),
        {"a": account_id, "t": object_type_id, "l": [p[0] for p in pairs], "r": [p[1] for p in pairs],
         "lf": [p[2] for p in pairs], "rf": [p[3] for p in pairs]})


async def copy_pairs(session: AsyncSession, account_id: int, object_type_id: str,
                     pairs: Sequence[tuple[int, int, float, dict[str, str]]]) -> None:
    raw = await _raw(session)
    await raw.copy_records_to_table(
        "duplicate_pairs", columns=("account_id", "object_type_id", "left_id", "right_id", "score", "matched_on"),
        records=[(account_id, object_type_id, a, b, s, _dumps(m)) for a, b, s, m in pairs])


async def insert_pairs(session: AsyncSession, account_id: int, object_type_id: str,
                       pairs: Sequence[tuple[int, int, float, dict[str, str]]]) -> None:
    if not pairs:
        return
    await session.execute(
        text("INSERT INTO duplicate_pairs (account_id, object_type_id, left_id, right_id, score, matched_on) "
             "SELECT :a, :t, l, r, s, m FROM unnest(CAST(:l AS bigint[]), CAST(:r AS bigint[]), "
             "CAST(:s AS float8[]), CAST(:m AS jsonb[])) AS p(l, r, s, m) "
             "ON CONFLICT (account_id, object_type_id, left_id, right_id) DO UPDATE SET score = EXCLUDED.score, "
             "matched_on = EXCLUDED.matched_on"),
        {"a": account_id, "t": object_type_id, "l": [p[0] for p in pairs], "r": [p[1] for p in pairs],
         "s": [p[2] for p in pairs], "m": [_dumps(p[3]) for p in pairs]})


async def delete_pairs_of(session: AsyncSession, account_id: int, object_type_id: str,
                          record_ids: Sequence[int]) -> None:
    await session.execute(
        text("DELETE FROM duplicate_pairs WHERE account_id = :a AND object_type_id = :t "
             "AND (left_id = ANY(:ids) OR right_id = ANY(:ids))"),
        {"a": account_id, "t": object_type_id, "ids": list(record_ids)})


async def delete_pairs_within(session: AsyncSession, account_id: int, object_type_id: str,
                              record_ids: Sequence[int]) -> None:
    await session.execute(
        text("DELETE FROM duplicate_pairs WHERE account_id = :a AND object_type_id = :t "
             "AND left_id = ANY(:ids) AND right_id = ANY(:ids)"),
        {"a": account_id, "t": object_type_id, "ids": list(record_ids)})


async def pairs_among(session: AsyncSession, account_id: int, object_type_id: str,
                      record_ids: Sequence[int]) -> list[tuple[int, int, float, dict[str, str]]]:
    rows = (await session.execute(
        text("SELECT left_id, right_id, score, matched_on FROM duplicate_pairs WHERE account_id = :a "
             "AND object_type_id = :t AND (left_id = ANY(:ids) OR right_id = ANY(:ids))"),
        {"a": account_id, "t": object_type_id, "ids": list(record_ids)})).all()
    return [(int(r[0]), int(r[1]), float(r[2]), r[3]) for r in rows]


async def clusters_of(session: AsyncSession, account_id: int, object_type_id: str,
                      record_ids: Sequence[int]) -> list[dict[str, Any]]:
    rows = (await session.execute(
        text("SELECT id, record_ids, score FROM duplicate_clusters WHERE account_id = :a AND object_type_id = :t "
             "AND record_ids && CAST(:ids AS bigint[])"),
        {"a": account_id, "t": object_type_id, "ids": list(record_ids)})).mappings().all()
    return [dict(r) for r in rows]


async def delete_clusters(session: AsyncSession, cluster_ids: Sequence[int]) -> None:
    if cluster_ids:
        await session.execute(text("UPDATE duplicate_pairs SET cluster_id = NULL WHERE cluster_id = ANY(:c)"),
                              {"c": list(cluster_ids)})
        await session.execute(text("DELETE FROM duplicate_clusters WHERE id = ANY(:c)"), {"c": list(cluster_ids)})


async def insert_clusters(session: AsyncSession, account_id: int, object_type_id: str,
                          clusters: Sequence[tuple[list[int], float]]) -> None:
    """New clusters, and their pairs pointed at them."""
    if not clusters:
        return
    for start in range(0, len(clusters), 10_000):
        chunk = clusters[start:start + 10_000]
        ids = (await session.execute(
            text("INSERT INTO duplicate_clusters (account_id, object_type_id, record_ids, score) "
                 "SELECT :a, :t, CAST(m AS bigint[]), s FROM unnest(CAST(:m AS text[]), CAST(:s AS float8[])) "
                 "WITH ORDINALITY AS c(m, s, n) ORDER BY n RETURNING id"),
            {"a": account_id, "t": object_type_id,
             "m": ["{" + ",".join(str(i) for i in members) + "}" for members, _ in chunk],
             "s": [score for _, score in chunk]})).scalars().all()
        await session.execute(text("""
            UPDATE duplicate_pairs p SET cluster_id = c.id
              FROM duplicate_clusters c
             WHERE c.id = ANY(:ids) AND p.account_id = c.account_id AND p.object_type_id = c.object_type_id
               AND p.left_id = ANY(c.record_ids) AND p.right_id = ANY(c.record_ids)
        """), {"ids": list(ids)})


async def list_clusters(session: AsyncSession, account_id: int, object_type_id: str, *, min_score: float,
                        after: int, limit: int) -> list[dict[str, Any]]:
    rows = (await session.execute(
        text("SELECT id, object_type_id, record_ids, score FROM duplicate_clusters WHERE account_id = :a "
             "AND object_type_id = :t AND score >= :s AND id > :after ORDER BY id LIMIT :limit"),
        {"a": account_id, "t": object_type_id, "s": min_score, "after": after, "limit": limit})).mappings().all()
    return [dict(r) for r in rows]


async def get_cluster(session: AsyncSession, account_id: int, cluster_id: int, *,
                      for_update: bool = False) -> dict[str, Any] | None:
    lock = "FOR UPDATE" if for_update else ""
    row = (await session.execute(
        text(f"SELECT id, object_type_id, record_ids, score FROM duplicate_clusters WHERE id = :c AND "
             f"account_id = :a {lock}"), {"c": cluster_id, "a": account_id})).mappings().first()
    return dict(row) if row else None


async def pairs_of_clusters(session: AsyncSession, cluster_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    rows = (await session.execute(
        text("SELECT cluster_id, left_id, right_id, score, matched_on FROM duplicate_pairs "
             "WHERE cluster_id = ANY(:c) ORDER BY score DESC, left_id, right_id"),
        {"c": list(cluster_ids)})).mappings().all()
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(int(r["cluster_id"]), []).append(dict(r))
    return out


async def lock_type(session: AsyncSession, account_id: int, object_type_id: str) -> None:
    """Serialise changes to one account's suggestions of one type (a scan's swap, event updates, dismissals)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                          {"k": f"duplicates:{account_id}:{object_type_id}"})

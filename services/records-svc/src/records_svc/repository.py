"""All of records-svc's SQL. Functions take the caller's session; only the request boundary commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from crm_common.inputs import as_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# The complete property history: records created in bulk store their creation source once instead of
# one version per value (migration 0006); every read and every append goes through this.
FULL_HISTORY = "corral_full_history(r.history, r.properties, r.created_source)"
RECORD_COLUMNS = "r.id, r.object_type_id, r.properties, r.created_at, r.updated_at, r.archived, r.archived_at"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def custom_properties(session: AsyncSession, account_id: int, object_type_id: str,
                            *, include_archived: bool = False) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM property_definitions WHERE account_id = :a AND object_type_id = :t "
             "AND (archived = false OR :arch) ORDER BY display_order, name"),
        {"a": account_id, "t": object_type_id, "arch": include_archived},
    )
    return [dict(r) for r in rows.mappings()]


async def custom_property(session: AsyncSession, account_id: int, object_type_id: str, name: str) -> dict | None:
    row = await session.execute(
        text("SELECT * FROM property_definitions WHERE account_id = :a AND object_type_id = :t AND name = :n"),
        {"a": account_id, "t": object_type_id, "n": name},
    )
    found = row.mappings().first()
    return dict(found) if found else None


async def insert_property(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    row = await session.execute(
        text("""
            INSERT INTO property_definitions (account_id, object_type_id, name, label, type, field_type, group_name,
                description, options, display_order, has_unique_value, hidden, form_field, calculation_formula)
            VALUES (:account_id, :object_type_id, :name, :label, :type, :field_type, :group_name, :description,
                CAST(:options AS jsonb), :display_order, :has_unique_value, :hidden, :form_field, :calculation_formula)
            ON CONFLICT (account_id, object_type_id, name) DO UPDATE SET
                label = EXCLUDED.label, type = EXCLUDED.type, field_type = EXCLUDED.field_type,
                group_name = EXCLUDED.group_name, description = EXCLUDED.description, options = EXCLUDED.options,
                display_order = EXCLUDED.display_order, has_unique_value = EXCLUDED.has_unique_value,
                hidden = EXCLUDED.hidden, form_field = EXCLUDED.form_field, archived = false, archived_at = NULL,
                updated_at = now()
            WHERE property_definitions.archived
            RETURNING *
        """),
        {**values, "options": _json(values.get("options", []))},
    )
    created = row.mappings().first()
    return dict(created) if created else {}


async def update_property(session: AsyncSession, account_id: int, object_type_id: str, name: str,
                          changes: dict[str, Any]) -> dict[str, Any]:
    assignments = ", ".join(
        f"{column} = CAST(:{column} AS jsonb)" if column == "options" else f"{column} = :{column}"
        for column in changes
    )
    params = {**changes, "a": account_id, "t": object_type_id, "n": name}
    if "options" in params:
        params["options"] = _json(params["options"])
    row = await session.execute(
        text(f"UPDATE property_definitions SET {assignments}, updated_at = now() "
             "WHERE account_id = :a AND object_type_id = :t AND name = :n RETURNING *"),
        params,
    )
    return dict(row.mappings().one())


async def archive_property(session: AsyncSession, account_id: int, object_type_id: str, name: str) -> bool:
    row = await session.execute(
        text("UPDATE property_definitions SET archived = true, archived_at = now() "
             "WHERE account_id = :a AND object_type_id = :t AND name = :n AND NOT archived RETURNING 1"),
        {"a": account_id, "t": object_type_id, "n": name},
    )
    return row.scalar() is not None


async def property_groups(session: AsyncSession, account_id: int, object_type_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM property_groups WHERE account_id = :a AND object_type_id = :t AND NOT archived "
             "ORDER BY display_order, name"),
        {"a": account_id, "t": object_type_id},
    )
    return [dict(r) for r in rows.mappings()]


async def upsert_property_group(session: AsyncSession, account_id: int, object_type_id: str, name: str,
                                label: str, display_order: int) -> dict[str, Any]:
    row = await session.execute(
        text("""
            INSERT INTO property_groups (account_id, object_type_id, name, label, display_order)
            VALUES (:a, :t, :n, :l, :o)
            ON CONFLICT (account_id, object_type_id, name) DO UPDATE
              SET label = EXCLUDED.label, display_order = EXCLUDED.display_order, archived = false
            RETURNING *
        """),
        {"a": account_id, "t": object_type_id, "n": name, "l": label, "o": display_order},
    )
    return dict(row.mappings().one())


async def archive_property_group(session: AsyncSession, account_id: int, object_type_id: str, name: str) -> bool:
    row = await session.execute(
        text("UPDATE property_groups SET archived = true WHERE account_id = :a AND object_type_id = :t "
             "AND name = :n AND NOT archived RETURNING 1"),
        {"a": account_id, "t": object_type_id, "n": name},
    )
    return row.scalar() is not None


# --- records ---------------------------------------------------------------------------------------------


async def insert_records(session: AsyncSession, account_id: int, object_type_id: str,
                         items: list[tuple[dict[str, str], datetime | None]], *, changed_at: str,
                         source_type: str, source_id: str | None) -> list[dict[str, Any]]:
    """Insert records (properties, optional create date) in one statement; rows come back in input order."""
    rows = await session.execute(
        text("""
            INSERT INTO records (account_id, object_type_id, properties, history, created_at, updated_at)
            SELECT :a, :t, i.props,
                   corral_append_history('{}'::jsonb, i.props, :changed_at, :source_type, :source_id),
                   coalesce(i.created_at, now()), now()
            FROM ROWS FROM (jsonb_to_recordset(CAST(:items AS jsonb)) AS (props jsonb, created_at timestamptz))
                 WITH ORDINALITY AS i(props, created_at, ord)
            ORDER BY i.ord
            RETURNING id, object_type_id, properties, created_at, updated_at, archived, archived_at
        """),
        {"a": account_id, "t": object_type_id, "changed_at": changed_at, "source_type": source_type,
         "source_id": source_id,
         "items": _json([{"props": props, "created_at": created.isoformat() if created else None}
                         for props, created in items])},
    )
    return [dict(r) for r in rows.mappings()]


async def fetch_records(session: AsyncSession, account_id: int, object_type_id: str, ids: list[int], *,
                        archived: bool | None = False, with_history: bool = False,
                        for_update: bool = False) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    archived_clause = "" if archived is None else "AND r.archived = :archived"
    history = f", {FULL_HISTORY} AS history" if with_history else ""
    lock = "FOR UPDATE" if for_update else ""
    rows = await session.execute(
        text(f"SELECT {RECORD_COLUMNS}{history} FROM records r WHERE r.account_id = :a AND r.object_type_id = :t "
             f"AND r.id = ANY(:ids) {archived_clause} ORDER BY r.id {lock}"),
        {"a": account_id, "t": object_type_id, "ids": ids, "archived": archived},
    )
    return {r["id"]: dict(r) for r in rows.mappings()}


async def update_records(session: AsyncSession, updates: list[tuple[int, dict[str, str]]], *,
                         keep_existing: list[str], changed_at: str, source_type: str,
                         source_id: str | None) -> list[dict[str, Any]]:
    """Merge incoming values into stored ones with the SQL rules; returns before/after per record."""
    rows = await session.execute(
        text("""
            WITH incoming AS (
                SELECT i.id, i.props FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS i(id bigint, props jsonb)
            ), merged AS (
                SELECT r.id, r.properties AS before,
                       corral_merge_properties(r.properties, incoming.props, CAST(:keep AS text[])) AS after
                FROM records r JOIN incoming ON incoming.id = r.id
            ), changed AS (
                SELECT id, before, after, corral_changed_properties(before, after) AS changes FROM merged
            )
            UPDATE records r SET
                properties = changed.after,
                history = corral_append_history(corral_full_history(r.history, r.properties, r.created_source),
                                                changed.changes, :changed_at, :source_type, :source_id),
                created_source = NULL,
                updated_at = CASE WHEN changed.changes = '{}'::jsonb THEN r.updated_at ELSE now() END
            FROM changed WHERE r.id = changed.id
            RETURNING r.id, r.object_type_id, r.properties, r.created_at, r.updated_at, r.archived,
                      r.archived_at, changed.before, changed.changes
        """),
        {"items": _json([{"id": i, "props": p} for i, p in updates]), "keep": keep_existing,
         "changed_at": changed_at, "source_type": source_type, "source_id": source_id},
    )
    return [dict(r) for r in rows.mappings()]


async def set_archived(session: AsyncSession, account_id: int, object_type_id: str, ids: list[int],
                       archived: bool) -> list[int]:
    rows = await session.execute(
        # A record absorbed by a merge stays hidden: only unmerge brings it back.
        text("UPDATE records SET archived = :arch, archived_at = CASE WHEN :arch THEN now() END, updated_at = now() "
             "WHERE account_id = :a AND object_type_id = :t AND id = ANY(:ids) AND archived <> :arch "
             "AND merged_into IS NULL RETURNING id"),
        {"a": account_id, "t": object_type_id, "ids": ids, "arch": archived},
    )
    return [r[0] for r in rows]


async def list_records(session: AsyncSession, account_id: int, object_type_id: str, *, after: int, limit: int,
                       archived: bool) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(f"SELECT {RECORD_COLUMNS} FROM records r WHERE r.account_id = :a AND r.object_type_id = :t "
             "AND r.archived = :arch AND r.id > :after ORDER BY r.id LIMIT :limit"),
        {"a": account_id, "t": object_type_id, "arch": archived, "after": after, "limit": limit},
    )
    return [dict(r) for r in rows.mappings()]


async def search_records(session: AsyncSession, account_id: int, object_type_id: str, *, where: str,
                         order_by: str, params: dict[str, Any], offset: int,
                         limit: int) -> tuple[list[dict[str, Any]], int]:
    base = f"FROM records r WHERE r.account_id = :a AND r.object_type_id = :t AND NOT r.archived AND ({where})"
    bound = {**params, "a": account_id, "t": object_type_id}
    # The total comes with the page (one pass over the matches instead of a second count query).
    rows = await session.execute(
        text(f"SELECT {RECORD_COLUMNS}, count(*) OVER () AS total {base} ORDER BY {order_by} "
             "LIMIT :limit OFFSET :offset"),
        {**bound, "limit": limit, "offset": offset},
    )
    results = [dict(r) for r in rows.mappings()]
    if results:
        return results, int(results[0]["total"])
    if offset == 0:
        return [], 0
    total = await session.execute(text(f"SELECT count(*) {base}"), bound)
    return results, int(total.scalar_one())


# --- unique values ---------------------------------------------------------------------------------------


async def claim_unique_values(session: AsyncSession, account_id: int, object_type_id: str,
                              claims: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Claim (namespace, value, record id) rows; returns the claims held by *another* record.

    The insert reports what it claimed; only the (usually no) values it could not claim are looked up
    afterwards, so the cost stays proportional to the claims, not to the account's existing values.
    """
    if not claims:
        return []
    if len(claims) > COPY_THRESHOLD:
        raw = await copy_to_staging(session, "claim_staging", "namespace text, value text, record_id bigint", claims)
        claimed = await raw.fetchval(
            "WITH claimed AS (INSERT INTO unique_values (account_id, object_type_id, namespace, value, record_id) "
            "SELECT $1, $2, namespace, value, record_id FROM claim_staging ON CONFLICT DO NOTHING RETURNING 1) "
            "SELECT count(*) FROM claimed", account_id, object_type_id)
        if claimed == len(claims):
            return []  # the usual case: nothing to compare row by row
        rows = await raw.fetch(
            "SELECT c.namespace, c.value, u.record_id FROM claim_staging c CROSS JOIN LATERAL ("
            "SELECT record_id FROM unique_values WHERE account_id = $1 AND object_type_id = $2 "
            "AND namespace = c.namespace AND value = c.value LIMIT 1) AS u WHERE u.record_id <> c.record_id",
            account_id, object_type_id)
        return [(r["namespace"], r["value"], r["record_id"]) for r in rows]
    else:
        result = await session.execute(
            text("""
                INSERT INTO unique_values (account_id, object_type_id, namespace, value, record_id)
                SELECT :a, :t, c.namespace, c.value, c.record_id
                FROM jsonb_to_recordset(CAST(:claims AS jsonb)) AS c(namespace text, value text, record_id bigint)
                ON CONFLICT DO NOTHING
                RETURNING namespace, value
            """),
            {"a": account_id, "t": object_type_id,
             "claims": _json([{"namespace": n, "value": v, "record_id": r} for n, v, r in claims])},
        )
        inserted = {(r.namespace, r.value) for r in result}
    unclaimed = [(n, v, r) for n, v, r in claims if (n, v) not in inserted]
    if not unclaimed:
        return []
    conflicts = []
    by_namespace: dict[str, list[tuple[str, int]]] = {}
    for namespace, value, record_id in unclaimed:
        by_namespace.setdefault(namespace, []).append((value, record_id))
    for namespace, wanted in by_namespace.items():
        owners = await resolve_unique_values(session, account_id, object_type_id, namespace, [v for v, _ in wanted])
        conflicts.extend((namespace, value, owners[value]) for value, record_id in wanted
                         if value in owners and owners[value] != record_id)
    return conflicts


async def release_unique_values(session: AsyncSession, account_id: int, object_type_id: str,
                                releases: list[tuple[str, str, int]]) -> None:
    if not releases:
        return
    await session.execute(
        text("""
            DELETE FROM unique_values u USING jsonb_to_recordset(CAST(:rel AS jsonb))
                AS x(namespace text, value text, record_id bigint)
            WHERE u.account_id = :a AND u.object_type_id = :t AND u.namespace = x.namespace
              AND u.value = x.value AND u.record_id = x.record_id
        """),
        {"a": account_id, "t": object_type_id,
         "rel": _json([{"namespace": n, "value": v, "record_id": r} for n, v, r in releases])},
    )


async def resolve_unique_values(session: AsyncSession, account_id: int, object_type_id: str, namespace: str,
                                values: list[str]) -> dict[str, int]:
    if not values:
        return {}
    # One index probe per wanted value, forced by a LATERAL subquery the planner cannot flatten (LIMIT). A
    # plain `value = ANY(:v)` or join let it, without fresh statistics on a table an import is filling (or
    # with autovacuum off), scan the account's values once per wanted value: 57 s, then 13 s, for 20,000
    # values at 100,000-480,000 rows.
    rows = await session.execute(
        text("SELECT wanted.value, u.record_id FROM unnest(CAST(:v AS text[])) AS wanted(value) "
             "CROSS JOIN LATERAL (SELECT record_id FROM unique_values WHERE account_id = :a "
             "AND object_type_id = :t AND namespace = :n AND value = wanted.value LIMIT 1) AS u"),
        {"a": account_id, "t": object_type_id, "n": namespace, "v": values},
    )
    return {r.value: r.record_id for r in rows}


# --- associations ----------------------------------------------------------------------------------------


async def insert_associations(session: AsyncSession, account_id: int,
                              rows: list[tuple[str, int, str, int, str, int]]) -> list[tuple[str, int, str, int, str, int]]:
    """(from type, from id, to type, to id, category, type id) rows; returns the ones that were new."""
    if not rows:
        return []
    if len(rows) > COPY_THRESHOLD:
        raw = await copy_to_staging(session, "association_staging",
                                    "ft text, fi bigint, tt text, ti bigint, c text, ty int", rows)
        inserted = await raw.fetch(
            "INSERT INTO associations (account_id, from_object_type_id, from_id, to_object_type_id, to_id, category, "
            "type_id) SELECT $1, ft, fi, tt, ti, c, ty FROM association_staging ON CONFLICT DO NOTHING "
            "RETURNING from_object_type_id, from_id, to_object_type_id, to_id, category, type_id", account_id)
        return [tuple(r) for r in inserted]  # type: ignore[misc]
    result = await session.execute(
        text("""
            INSERT INTO associations (account_id, from_object_type_id, from_id, to_object_type_id, to_id,
                                      category, type_id)
            SELECT :a, x.ft, x.fi, x.tt, x.ti, x.c, x.ty
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(ft text, fi bigint, tt text, ti bigint, c text, ty int)
            ON CONFLICT DO NOTHING
            RETURNING from_object_type_id, from_id, to_object_type_id, to_id, category, type_id
        """),
        {"a": account_id, "rows": _json([{"ft": ft, "fi": fi, "tt": tt, "ti": ti, "c": c, "ty": ty}
                                         for ft, fi, tt, ti, c, ty in rows])},
    )
    return [tuple(r) for r in result]  # type: ignore[misc]


async def associations_of(session: AsyncSession, account_id: int, from_ids: list[int],
                          to_object_type_ids: list[str]) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("""
            SELECT a.from_id, a.to_object_type_id, a.to_id, a.category, a.type_id
            FROM associations a JOIN records t ON t.id = a.to_id AND NOT t.archived
            WHERE a.account_id = :a AND a.from_id = ANY(:ids) AND a.to_object_type_id = ANY(:types)
            ORDER BY a.from_id, a.to_object_type_id, a.to_id, a.type_id
        """),
        {"a": account_id, "ids": from_ids, "types": to_object_type_ids},
    )
    return [dict(r) for r in rows.mappings()]


async def archived_record_ids(session: AsyncSession, account_id: int, object_type_id: str,
                              ids: list[int]) -> set[int]:
    """Which of these records are archived (one primary-key probe per id, nothing else read)."""
    if not ids:
        return set()
    rows = await session.execute(
        text("SELECT r.id FROM unnest(CAST(:ids AS bigint[])) AS wanted(id) "
             "CROSS JOIN LATERAL (SELECT id FROM records WHERE id = wanted.id AND account_id = :a "
             "AND object_type_id = :t AND archived LIMIT 1) AS r"),
        {"a": account_id, "t": object_type_id, "ids": ids},
    )
    return {r[0] for r in rows}


async def contact_emails(session: AsyncSession, account_id: int, object_type_id: str,
                         ids: list[int]) -> dict[int, tuple[str, str]]:
    """record id -> (primary email, additional emails as stored), one primary-key probe per id."""
    if not ids:
        return {}
    rows = await session.execute(
        text("SELECT r.id, r.email, r.additional FROM unnest(CAST(:ids AS bigint[])) AS wanted(id) "
             "CROSS JOIN LATERAL (SELECT id, coalesce(properties ->> 'email', '') AS email, "
             "coalesce(properties ->> 'hs_additional_emails', '') AS additional FROM records "
             "WHERE id = wanted.id AND account_id = :a AND object_type_id = :t LIMIT 1) AS r"),
        {"a": account_id, "t": object_type_id, "ids": ids},
    )
    return {r.id: (r.email, r.additional) for r in rows}


async def existing_record_ids(session: AsyncSession, account_id: int, object_type_id: str,
                              ids: list[int]) -> set[int]:
    rows = await session.execute(
        text("SELECT id FROM records WHERE account_id = :a AND object_type_id = :t AND id = ANY(:ids) "
             "AND NOT archived"),
        {"a": account_id, "t": object_type_id, "ids": ids},
    )
    return {r[0] for r in rows}


# --- custom object schemas -------------------------------------------------------------------------------


async def find_schema(session: AsyncSession, account_id: int, key: str) -> dict[str, Any] | None:
    """A custom object schema by type id (`2-1001`), name or fully qualified name (`p42_cars`)."""
    lowered = key.lower()
    number = as_id(lowered[2:]) if lowered.startswith("2-") else None
    fqn_prefix = f"p{account_id}_"
    name = lowered[len(fqn_prefix):] if lowered.startswith(fqn_prefix) else lowered
    row = await session.execute(
        text("SELECT * FROM object_schemas WHERE account_id = :a AND NOT archived "
             "AND (type_number = :n OR lower(name) = :name) LIMIT 1"),
        {"a": account_id, "n": number, "name": name},
    )
    found = row.mappings().first()
    return dict(found) if found else None


async def list_schemas(session: AsyncSession, account_id: int, *, archived: bool = False) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM object_schemas WHERE account_id = :a AND archived = :arch ORDER BY type_number"),
        {"a": account_id, "arch": archived},
    )
    return [dict(r) for r in rows.mappings()]


async def insert_schema(session: AsyncSession, values: dict[str, Any]) -> dict[str, Any]:
    row = await session.execute(
        text("""
            INSERT INTO object_schemas (account_id, name, label_singular, label_plural, description,
                primary_display_property, secondary_display_properties, searchable_properties, required_properties)
            VALUES (:account_id, :name, :label_singular, :label_plural, :description, :primary_display_property,
                :secondary_display_properties, :searchable_properties, :required_properties)
            RETURNING *
        """),
        values,
    )
    return dict(row.mappings().one())


async def update_schema(session: AsyncSession, account_id: int, type_number: int,
                        changes: dict[str, Any]) -> dict[str, Any]:
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    row = await session.execute(
        text(f"UPDATE object_schemas SET {assignments}, updated_at = now() "
             "WHERE account_id = :a AND type_number = :n RETURNING *"),
        {**changes, "a": account_id, "n": type_number},
    )
    return dict(row.mappings().one())


async def delete_schema(session: AsyncSession, account_id: int, type_number: int, *, hard: bool) -> None:
    if hard:
        await session.execute(text("DELETE FROM object_schemas WHERE account_id = :a AND type_number = :n"),
                              {"a": account_id, "n": type_number})
        await session.execute(text("DELETE FROM property_definitions WHERE account_id = :a AND object_type_id = :t"),
                              {"a": account_id, "t": f"2-{type_number}"})
    else:
        await session.execute(text("UPDATE object_schemas SET archived = true, updated_at = now() "
                                   "WHERE account_id = :a AND type_number = :n"), {"a": account_id, "n": type_number})


async def count_records(session: AsyncSession, account_id: int, object_type_id: str) -> int:
    row = await session.execute(
        text("SELECT count(*) FROM records WHERE account_id = :a AND object_type_id = :t"),
        {"a": account_id, "t": object_type_id})
    return int(row.scalar_one())


async def schema_associations(session: AsyncSession, account_id: int, object_type_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM schema_associations WHERE account_id = :a "
             "AND (from_object_type_id = :t OR to_object_type_id = :t) ORDER BY id"),
        {"a": account_id, "t": object_type_id})
    return [dict(r) for r in rows.mappings()]


async def insert_schema_association(session: AsyncSession, account_id: int, from_type: str, to_type: str,
                                    name: str | None) -> dict[str, Any]:
    row = await session.execute(
        text("""
            INSERT INTO schema_associations (account_id, from_object_type_id, to_object_type_id, name)
            VALUES (:a, :f, :t, :n)
            ON CONFLICT (account_id, from_object_type_id, to_object_type_id) DO UPDATE SET name = EXCLUDED.name
            RETURNING *
        """),
        {"a": account_id, "f": from_type, "t": to_type, "n": name})
    return dict(row.mappings().one())


async def delete_schema_association(session: AsyncSession, account_id: int, association_id: int) -> bool:
    row = await session.execute(text("DELETE FROM schema_associations WHERE account_id = :a AND id = :i RETURNING 1"),
                                {"a": account_id, "i": association_id})
    return row.scalar() is not None


# --- association labels ----------------------------------------------------------------------------------


async def association_definitions(session: AsyncSession, account_id: int, from_type: str,
                                  to_type: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM association_definitions WHERE account_id = :a AND from_object_type_id = :f "
             "AND to_object_type_id = :t ORDER BY type_id"),
        {"a": account_id, "f": from_type, "t": to_type})
    return [dict(r) for r in rows.mappings()]


async def insert_association_definition(session: AsyncSession, account_id: int, from_type: str, to_type: str,
                                        name: str | None, label: str | None,
                                        category: str = "USER_DEFINED") -> dict[str, Any]:
    row = await session.execute(
        text("""
            INSERT INTO association_definitions (account_id, from_object_type_id, to_object_type_id, name, label,
                                                 category)
            VALUES (:a, :f, :t, :n, :l, :c) RETURNING *
        """),
        {"a": account_id, "f": from_type, "t": to_type, "n": name, "l": label, "c": category})
    return dict(row.mappings().one())


async def link_inverse_definitions(session: AsyncSession, account_id: int, first: int, second: int) -> None:
    await session.execute(
        text("UPDATE association_definitions SET inverse_type_id = CASE type_id WHEN :x THEN :y ELSE :x END "
             "WHERE account_id = :a AND type_id IN (:x, :y)"),
        {"a": account_id, "x": first, "y": second})


async def rename_association_definition(session: AsyncSession, account_id: int, type_id: int, label: str) -> bool:
    row = await session.execute(
        text("UPDATE association_definitions SET label = :l WHERE account_id = :a AND type_id = :t RETURNING 1"),
        {"a": account_id, "t": type_id, "l": label})
    return row.scalar() is not None


async def delete_association_definition(session: AsyncSession, account_id: int, type_ids: list[int]) -> None:
    await session.execute(
        text("DELETE FROM associations WHERE account_id = :a AND category = 'USER_DEFINED' AND type_id = ANY(:t)"),
        {"a": account_id, "t": type_ids})
    await session.execute(
        text("DELETE FROM association_definitions WHERE account_id = :a AND type_id = ANY(:t)"),
        {"a": account_id, "t": type_ids})


async def association_rows_between(session: AsyncSession, account_id: int, from_id: int,
                                   to_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM associations WHERE account_id = :a AND from_id = :f AND to_id = :t ORDER BY type_id"),
        {"a": account_id, "f": from_id, "t": to_id})
    return [dict(r) for r in rows.mappings()]


async def delete_associations(session: AsyncSession, account_id: int,
                              rows: list[tuple[int, int, str, int]]) -> list[tuple[int, int, str, int]]:
    """Delete (from id, to id, category, type id) rows; returns those that existed."""
    if not rows:
        return []
    result = await session.execute(
        text("""
            DELETE FROM associations a USING jsonb_to_recordset(CAST(:rows AS jsonb))
                AS x(fi bigint, ti bigint, c text, ty int)
            WHERE a.account_id = :a AND a.from_id = x.fi AND a.to_id = x.ti AND a.category = x.c AND a.type_id = x.ty
            RETURNING a.from_id, a.to_id, a.category, a.type_id
        """),
        {"a": account_id, "rows": _json([{"fi": f, "ti": t, "c": c, "ty": ty} for f, t, c, ty in rows])})
    return [(r[0], r[1], r[2], r[3]) for r in result]


async def associated_page(session: AsyncSession, account_id: int, from_id: int, to_type: str, *, after: int,
                          limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("""
            SELECT a.to_id, array_agg(a.category ORDER BY a.type_id) AS categories,
                   array_agg(a.type_id ORDER BY a.type_id) AS type_ids
            FROM associations a JOIN records t ON t.id = a.to_id AND NOT t.archived
            WHERE a.account_id = :a AND a.from_id = :f AND a.to_object_type_id = :t AND a.to_id > :after
            GROUP BY a.to_id ORDER BY a.to_id LIMIT :limit
        """),
        {"a": account_id, "f": from_id, "t": to_type, "after": after, "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def primary_associations(session: AsyncSession, account_id: int, from_id: int, to_type: str,
                               type_id: int) -> list[int]:
    rows = await session.execute(
        text("SELECT to_id FROM associations WHERE account_id = :a AND from_id = :f AND to_object_type_id = :t "
             "AND category = 'HUBSPOT_DEFINED' AND type_id = :ty"),
        {"a": account_id, "f": from_id, "t": to_type, "ty": type_id})
    return [r[0] for r in rows]


# --- journal and aliases ---------------------------------------------------------------------------------


JOURNAL_COLUMNS = ("operation_id", "account_id", "object_type_id", "record_id", "kind", "old_values", "new_values",
                   "association")
# Above this many rows COPY beats one statement with a JSON parameter.
COPY_THRESHOLD = 200


async def copy_to_staging(session: AsyncSession, table: str, columns: str, records: list[tuple[Any, ...]]) -> Any:
    """COPY rows into a per-connection temp table emptied at commit; returns the raw connection for the follow-up."""
    raw = await raw_connection(session)
    await raw.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({columns}) ON COMMIT DELETE ROWS")
    await raw.execute(f"TRUNCATE {table}")
    await raw.copy_records_to_table(table, records=records)
    return raw


async def insert_new_records(session: AsyncSession, account_id: int, object_type_id: str, properties: list[str], *,
                             created_source: dict[str, str], operation_id: str | None) -> list[int]:
    """New records (properties as JSON text) through COPY; their journal entries copied from the same rows."""
    raw = await raw_connection(session)
    # Ids are allocated up front so each caller's row knows its id without relying on insert order.
    ids = [r[0] for r in await raw.fetch("SELECT nextval('record_ids') FROM generate_series(1, $1)", len(properties))]
    await copy_to_staging(session, "bulk_new_records", "id bigint, props jsonb", list(zip(ids, properties, strict=True)))
    await session.execute(
        text("INSERT INTO records (id, account_id, object_type_id, properties, created_source) "
             "SELECT s.id, :a, :t, s.props, CAST(:created_source AS jsonb) FROM bulk_new_records s"),
        {"a": account_id, "t": object_type_id, "created_source": _json(created_source)},
    )
    if operation_id:
        await session.execute(
            text("INSERT INTO journal (operation_id, account_id, object_type_id, record_id, kind, new_values) "
                 "SELECT :o, :a, :t, s.id, 'CREATE', s.props FROM bulk_new_records s"),
            {"o": operation_id, "a": account_id, "t": object_type_id},
        )
    return ids


async def raw_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction, for COPY.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs itself; a COPY on the
    raw connection before that would run outside the transaction (autocommit) and an ON COMMIT DELETE ROWS
    staging table would lose its rows at once. One statement through the session makes sure BEGIN is sent.
    """
    connection = await session.connection()
    await connection.exec_driver_sql("SELECT 1")
    return (await connection.get_raw_connection()).driver_connection


async def journal_records(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """Entries: operation_id, account_id, object_type_id, record_id, kind, old_values, new_values, association."""
    if not entries:
        return
    if len(entries) > COPY_THRESHOLD:
        raw = await raw_connection(session)
        await raw.copy_records_to_table("journal", columns=JOURNAL_COLUMNS, records=[
            tuple(orjson.dumps(e[c]).decode() if c in ("old_values", "new_values", "association") and e[c] is not None
                  else e[c] for c in JOURNAL_COLUMNS) for e in entries])
        return
    await session.execute(
        text("""
            INSERT INTO journal (operation_id, account_id, object_type_id, record_id, kind, old_values, new_values,
                                 association)
            SELECT operation_id, account_id, object_type_id, record_id, kind, old_values, new_values, association
            FROM jsonb_to_recordset(CAST(:entries AS jsonb)) AS e(operation_id text, account_id bigint,
                 object_type_id text, record_id bigint, kind text, old_values jsonb, new_values jsonb,
                 association jsonb)
        """),
        {"entries": _json(entries)})


async def journal_page(session: AsyncSession, account_id: int, operation_id: str, *, after: int,
                       limit: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM journal WHERE account_id = :a AND operation_id = :o AND id > :after ORDER BY id "
             "LIMIT :limit"),
        {"a": account_id, "o": operation_id, "after": after, "limit": limit})
    return [dict(r) for r in rows.mappings()]


async def journal_for_undo(session: AsyncSession, account_id: int, operation_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("SELECT * FROM journal WHERE account_id = :a AND operation_id = :o AND undone_at IS NULL "
             "ORDER BY id DESC"),
        {"a": account_id, "o": operation_id})
    return [dict(r) for r in rows.mappings()]


async def mark_undone(session: AsyncSession, account_id: int, operation_id: str) -> None:
    await session.execute(
        text("UPDATE journal SET undone_at = now() WHERE account_id = :a AND operation_id = :o AND undone_at IS NULL"),
        {"a": account_id, "o": operation_id})


async def resolve_alias(session: AsyncSession, account_id: int, object_type_id: str, alias_id: int) -> int | None:
    row = await session.execute(
        text("SELECT record_id FROM record_aliases WHERE account_id = :a AND object_type_id = :t AND alias_id = :i"),
        {"a": account_id, "t": object_type_id, "i": alias_id})
    return row.scalar()


async def hard_delete_records(session: AsyncSession, account_id: int, ids: list[int]) -> list[int]:
    """GDPR and undo of a creation: the record, its unique values, associations, aliases and journal go."""
    if not ids:
        return []
    await session.execute(text("DELETE FROM journal WHERE account_id = :a AND record_id = ANY(:ids)"),
                          {"a": account_id, "ids": ids})
    await session.execute(text("DELETE FROM record_aliases WHERE account_id = :a AND record_id = ANY(:ids)"),
                          {"a": account_id, "ids": ids})
    rows = await session.execute(text("DELETE FROM records WHERE account_id = :a AND id = ANY(:ids) RETURNING id"),
                                 {"a": account_id, "ids": ids})
    return [r[0] for r in rows]


async def current_properties(session: AsyncSession, account_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    rows = await session.execute(
        text("SELECT id, object_type_id, properties, archived FROM records WHERE account_id = :a AND id = ANY(:ids) "
             "FOR UPDATE"),
        {"a": account_id, "ids": ids})
    return {r.id: {"object_type_id": r.object_type_id, "properties": r.properties, "archived": r.archived}
            for r in rows}


async def set_properties(session: AsyncSession, updates: list[tuple[int, dict[str, str]]], *, changed_at: str,
                         source_type: str, source_id: str | None) -> None:
    """Write exact values (no merge rules): used by undo to put previous values back."""
    if not updates:
        return
    await session.execute(
        text("""
            WITH incoming AS (
                SELECT i.id, i.props FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS i(id bigint, props jsonb)
            )
            UPDATE records r SET
                properties = (SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb) FROM jsonb_each(
                                  r.properties || incoming.props) AS e(k, v) WHERE v <> '""'::jsonb),
                history = corral_append_history(corral_full_history(r.history, r.properties, r.created_source),
                                                incoming.props, :changed_at, :st, :sid),
                created_source = NULL,
                updated_at = now()
            FROM incoming WHERE r.id = incoming.id
        """),
        {"items": _json([{"id": i, "props": p} for i, p in updates]), "changed_at": changed_at, "st": source_type,
         "sid": source_id})


async def lock_domains(session: AsyncSession, account_id: int, domains: list[str]) -> None:
    """Locks company domains until the transaction ends, in sorted order (no deadlock between batches)."""
    await session.execute(
        text("SELECT count(pg_advisory_xact_lock(hashtextextended('company-domain:' || d, :a))) "
             "FROM (SELECT DISTINCT unnest(CAST(:d AS text[])) AS d ORDER BY 1) AS sorted"),
        {"a": account_id, "d": domains})


async def companies_by_domain(session: AsyncSession, account_id: int, domains: list[str]) -> dict[str, list[int]]:
    rows = await session.execute(
        text("""
            SELECT lower(properties ->> 'domain') AS domain, array_agg(id ORDER BY id) AS ids FROM records
            WHERE account_id = :a AND object_type_id = '0-2' AND NOT archived
              AND lower(properties ->> 'domain') = ANY(:d)
            GROUP BY 1
        """),
        {"a": account_id, "d": domains})
    return {r.domain: list(r.ids) for r in rows}


# --- merges ----------------------------------------------------------------------------------------------


async def lock_for_merge(session: AsyncSession, account_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Both records of a merge, locked in id order so concurrent merges cannot deadlock."""
    rows = await session.execute(
        text(f"SELECT id, object_type_id, properties, {FULL_HISTORY} AS history, created_at, updated_at, archived, "
             "archived_at, merged_into FROM records r WHERE account_id = :a AND id = ANY(:ids) ORDER BY id FOR UPDATE"),
        {"a": account_id, "ids": ids})
    return {r["id"]: dict(r) for r in rows.mappings()}


async def record_associations(session: AsyncSession, account_id: int, record_id: int) -> dict[str, list[dict]]:
    rows = await session.execute(
        text("SELECT from_object_type_id, from_id, to_object_type_id, to_id, category, type_id FROM associations "
             "WHERE account_id = :a AND (from_id = :r OR to_id = :r) ORDER BY from_id, to_id, type_id"),
        {"a": account_id, "r": record_id})
    outgoing, incoming = [], []
    for r in rows.mappings():
        if r["from_id"] == record_id:
            outgoing.append({"toObjectTypeId": r["to_object_type_id"], "toId": str(r["to_id"]),
                             "category": r["category"], "typeId": r["type_id"]})
        else:
            incoming.append({"fromObjectTypeId": r["from_object_type_id"], "fromId": str(r["from_id"]),
                             "category": r["category"], "typeId": r["type_id"]})
    return {"outgoing": outgoing, "incoming": incoming}


async def insert_record_with_history(session: AsyncSession, account_id: int, object_type_id: str,
                                     properties: dict[str, str], history: dict[str, Any], created_at: datetime,
                                     *, changed_at: str, source_type: str, source_id: str | None) -> dict[str, Any]:
    row = await session.execute(
        text("""
            INSERT INTO records (account_id, object_type_id, properties, history, created_at, updated_at)
            VALUES (:a, :t, CAST(:p AS jsonb),
                    corral_append_history(CAST(:h AS jsonb), CAST(:p AS jsonb), :changed_at, :st, :sid), :c, now())
            RETURNING id, object_type_id, properties, created_at, updated_at, archived, archived_at
        """),
        {"a": account_id, "t": object_type_id, "p": _json(properties), "h": _json(history), "c": created_at,
         "changed_at": changed_at, "st": source_type, "sid": source_id})
    return dict(row.mappings().one())


async def release_all_unique_values(session: AsyncSession, record_ids: list[int]) -> None:
    await session.execute(text("DELETE FROM unique_values WHERE record_id = ANY(:ids)"), {"ids": record_ids})


async def move_associations(session: AsyncSession, account_id: int, old_ids: list[int], new_id: int, *,
                            drop_outgoing: list[tuple[int, int]], drop_incoming: list[tuple[int, int]]) -> int:
    """Re-point every association of `old_ids` at `new_id` (both directions) and remove the old rows.
    Links between the old records themselves vanish; `drop_outgoing` (record, type id) and `drop_incoming`
    (record, type id) name HubSpot-defined rows that must not follow (a secondary's primary label)."""
    moved = await session.execute(
        text("""
            WITH old AS (
                DELETE FROM associations WHERE account_id = :a AND (from_id = ANY(:old) OR to_id = ANY(:old))
                RETURNING *
            ), kept AS (
                SELECT * FROM old o
                WHERE NOT (o.from_id = ANY(:old) AND o.to_id = ANY(:old))
                  AND NOT (o.category = 'HUBSPOT_DEFINED' AND EXISTS (
                      SELECT 1 FROM jsonb_to_recordset(CAST(:out AS jsonb)) AS d(r bigint, t int)
                      WHERE o.from_id = d.r AND o.type_id = d.t))
                  AND NOT (o.category = 'HUBSPOT_DEFINED' AND EXISTS (
                      SELECT 1 FROM jsonb_to_recordset(CAST(:inc AS jsonb)) AS d(r bigint, t int)
                      WHERE o.to_id = d.r AND o.type_id = d.t))
            ), inserted AS (
                INSERT INTO associations (account_id, from_object_type_id, from_id, to_object_type_id, to_id,
                                          category, type_id, created_at)
                SELECT account_id, from_object_type_id,
                       CASE WHEN from_id = ANY(:old) THEN :new ELSE from_id END, to_object_type_id,
                       CASE WHEN to_id = ANY(:old) THEN :new ELSE to_id END, category, type_id, min(created_at)
                FROM kept GROUP BY 1, 2, 3, 4, 5, 6, 7
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT count(*) FROM inserted
        """),
        {"a": account_id, "old": old_ids, "new": new_id,
         "out": _json([{"r": r, "t": t} for r, t in drop_outgoing]),
         "inc": _json([{"r": r, "t": t} for r, t in drop_incoming])})
    return int(moved.scalar_one())


async def mark_merged(session: AsyncSession, account_id: int, old_ids: list[int], new_id: int) -> None:
    await session.execute(
        text("UPDATE records SET archived = true, archived_at = now(), merged_into = :n "
             "WHERE account_id = :a AND id = ANY(:old)"),
        {"a": account_id, "old": old_ids, "n": new_id})


async def point_aliases(session: AsyncSession, account_id: int, object_type_id: str, old_ids: list[int],
                        new_id: int) -> None:
    await session.execute(
        text("UPDATE record_aliases SET record_id = :n WHERE account_id = :a AND record_id = ANY(:old)"),
        {"a": account_id, "old": old_ids, "n": new_id})
    await session.execute(
        text("""
            INSERT INTO record_aliases (account_id, object_type_id, alias_id, record_id)
            SELECT :a, :t, unnest(CAST(:old AS bigint[])), :n
            ON CONFLICT (account_id, object_type_id, alias_id) DO UPDATE SET record_id = EXCLUDED.record_id
        """),
        {"a": account_id, "t": object_type_id, "old": old_ids, "n": new_id})


async def remove_aliases(session: AsyncSession, account_id: int, alias_ids: list[int]) -> None:
    await session.execute(text("DELETE FROM record_aliases WHERE account_id = :a AND alias_id = ANY(:ids)"),
                          {"a": account_id, "ids": alias_ids})


async def restore_merged_original(session: AsyncSession, account_id: int, record_id: int,
                                  properties: dict[str, str], *, changed_at: str, source_id: str) -> None:
    await session.execute(
        text("""
            UPDATE records SET properties = CAST(:p AS jsonb), archived = false, archived_at = NULL,
                merged_into = NULL, updated_at = now(),
                history = corral_append_history(corral_full_history(history, properties, created_source),
                                                corral_changed_properties(properties, CAST(:p AS jsonb)),
                                                :changed_at, 'MERGE', :sid),
                created_source = NULL
            WHERE account_id = :a AND id = :r
        """),
        {"a": account_id, "r": record_id, "p": _json(properties), "changed_at": changed_at, "sid": source_id})


async def delete_all_associations(session: AsyncSession, account_id: int, record_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        text("DELETE FROM associations WHERE account_id = :a AND (from_id = :r OR to_id = :r) RETURNING *"),
        {"a": account_id, "r": record_id})
    return [dict(r) for r in rows.mappings()]


async def journal_since(session: AsyncSession, account_id: int, record_id: int, after_id: int) -> list[dict]:
    rows = await session.execute(
        text("SELECT * FROM journal WHERE account_id = :a AND record_id = :r AND id > :after ORDER BY id"),
        {"a": account_id, "r": record_id, "after": after_id})
    return [dict(r) for r in rows.mappings()]


async def primary_holders(session: AsyncSession, account_id: int, from_ids: list[int], to_type: str,
                          type_id: int) -> dict[int, int]:
    rows = await session.execute(
        text("SELECT from_id, to_id FROM associations WHERE account_id = :a AND from_id = ANY(:f) "
             "AND to_object_type_id = :t AND category = 'HUBSPOT_DEFINED' AND type_id = :ty"),
        {"a": account_id, "f": from_ids, "t": to_type, "ty": type_id})
    return {r.from_id: r.to_id for r in rows}


async def associations_between_pairs(session: AsyncSession, account_id: int,
                                     pairs: list[tuple[int, int]]) -> dict[tuple[int, int], list[tuple[str, int]]]:
    """(category, type id) of every association from each `from` to its `to`, for many pairs in one query."""
    if not pairs:
        return {}
    rows = await session.execute(
        text("""
            SELECT p.f AS from_id, p.t AS to_id, a.category, a.type_id
            FROM unnest(CAST(:f AS bigint[]), CAST(:t AS bigint[])) AS p(f, t)
            CROSS JOIN LATERAL (SELECT category, type_id FROM associations
                                WHERE from_id = p.f AND to_id = p.t AND account_id = :a
                                OFFSET 0) AS a  -- a fence: one index probe per pair, whatever the statistics
            ORDER BY a.type_id
        """),
        {"a": account_id, "f": [f for f, _ in pairs], "t": [t for _, t in pairs]})
    out: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for r in rows:
        out.setdefault((r.from_id, r.to_id), []).append((r.category, r.type_id))
    return out


# --- batch answers ---------------------------------------------------------------------------------------


async def stored_answer(session: AsyncSession, account_id: int, batch_key: str) -> bytes | None:
    """The answer stored with a batch key, the key locked until this transaction ends.

    A second call with the same key (a retry sent while the first is still running) waits here for the
    first to commit and then finds its answer, so the two never both write.
    """
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, :a))"),
                          {"k": batch_key, "a": account_id})
    found = await session.execute(
        text("SELECT answer FROM batch_answers WHERE account_id = :a AND batch_key = :k"),
        {"a": account_id, "k": batch_key})
    return found.scalar()


async def store_answer(session: AsyncSession, account_id: int, batch_key: str, answer: bytes, *,
                       retention_hours: float) -> None:
    """Keeps the answer of a keyed write (in the write's transaction) and drops the account's expired ones."""
    await session.execute(
        text("INSERT INTO batch_answers (account_id, batch_key, answer) VALUES (:a, :k, :b) ON CONFLICT DO NOTHING"),
        {"a": account_id, "k": batch_key, "b": answer})
    await session.execute(
        text("DELETE FROM batch_answers WHERE account_id = :a "
             "AND created_at < now() - make_interval(secs => :keep)"),
        {"a": account_id, "keep": retention_hours * 3600})

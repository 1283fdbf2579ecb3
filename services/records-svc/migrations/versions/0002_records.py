"""records, unique values, custom properties and groups, associations; SQL rules shared by all write paths

Revision ID: 0002
Revises: 0001

The merge of incoming values into stored ones (clears, "don't overwrite", lifecycle stage only
moving forward, `;`-prefixed multi-value appends) and the property history are SQL functions, so
the single-record API path and the set-based bulk path apply exactly the same rules.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIFECYCLE_ORDER = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]

# HubSpot keeps a bounded number of versions per property; older ones drop off.
HISTORY_VERSIONS_KEPT = 45

STATEMENTS = [
    "CREATE SEQUENCE record_ids START WITH 1001",
    # Tokens for `query` and CONTAINS_TOKEN: each value as written plus split on the punctuation
    # that joins words in emails, domains and phone numbers, so "doe" finds john.doe@example.com.
    """
    CREATE FUNCTION corral_search_text(properties jsonb) RETURNS text
    IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
        SELECT coalesce(string_agg(value || ' ' || translate(value, '@._-+/:()', '         '), ' '), '')
        FROM jsonb_each_text(properties)
        WHERE key NOT LIKE 'hs\\_%' OR key IN ('hs_additional_emails', 'hs_additional_domains')
    $$
    """,
    f"""
    CREATE FUNCTION corral_lifecycle_rank(stage text) RETURNS integer
    IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
        SELECT array_position(ARRAY[{", ".join(repr(s) for s in LIFECYCLE_ORDER)}]::text[], lower(stage))
    $$
    """,
    # incoming: property -> new value ('' clears); keep_existing: properties whose stored non-empty
    # value must survive ('*' = all). Returns the merged property map.
    """
    CREATE FUNCTION corral_merge_properties(stored jsonb, incoming jsonb, keep_existing text[])
    RETURNS jsonb IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
        SELECT coalesce(jsonb_object_agg(k, v) FILTER (WHERE v IS NOT NULL), '{}'::jsonb)
        FROM (
            SELECT coalesce(n.key, o.key) AS k,
                CASE
                    WHEN n.key IS NULL THEN o.value
                    WHEN o.value IS NOT NULL AND o.value <> '""'::jsonb
                         AND ('*' = ANY(keep_existing) OR n.key = ANY(keep_existing)) THEN o.value
                    WHEN n.value = '""'::jsonb OR n.value = 'null'::jsonb THEN NULL
                    WHEN n.key = 'lifecyclestage' AND o.value IS NOT NULL
                         AND corral_lifecycle_rank(n.value #>> '{}') < corral_lifecycle_rank(o.value #>> '{}')
                         THEN o.value
                    WHEN left(n.value #>> '{}', 1) = ';' THEN
                        CASE WHEN o.value IS NULL OR o.value = '""'::jsonb
                             THEN to_jsonb(substr(n.value #>> '{}', 2))
                             ELSE to_jsonb((o.value #>> '{}') || (n.value #>> '{}')) END
                    ELSE n.value
                END AS v
            FROM jsonb_each(stored) o
            FULL JOIN jsonb_each(incoming) n ON o.key = n.key
        ) merged
    $$
    """,
    # The properties whose value differs between two maps (a removed property maps to "").
    """
    CREATE FUNCTION corral_changed_properties(before jsonb, after jsonb)
    RETURNS jsonb IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
        SELECT coalesce(jsonb_object_agg(coalesce(a.key, b.key), coalesce(a.value, '""'::jsonb)), '{}'::jsonb)
        FROM jsonb_each(before) b
        FULL JOIN jsonb_each(after) a ON a.key = b.key
        WHERE a.value IS DISTINCT FROM b.value
    $$
    """,
    f"""
    CREATE FUNCTION corral_append_history(history jsonb, changes jsonb, changed_at text,
                                          source_type text, source_id text)
    RETURNS jsonb IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
        SELECT coalesce(history, '{{}}'::jsonb) || coalesce((
            SELECT jsonb_object_agg(
                c.key,
                jsonb_path_query_array(
                    jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                        'value', c.value #>> '{{}}', 'timestamp', changed_at,
                        'sourceType', source_type, 'sourceId', source_id)))
                    || coalesce(history -> c.key, '[]'::jsonb),
                    '$[0 to {HISTORY_VERSIONS_KEPT - 1}]'))
            FROM jsonb_each(changes) c
        ), '{{}}'::jsonb)
    $$
    """,
    """
    CREATE TABLE records (
        id bigint PRIMARY KEY DEFAULT nextval('record_ids'),
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        properties jsonb NOT NULL DEFAULT '{}'::jsonb,
        history jsonb NOT NULL DEFAULT '{}'::jsonb,
        search_tokens tsvector GENERATED ALWAYS AS (to_tsvector('simple', corral_search_text(properties))) STORED,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        archived boolean NOT NULL DEFAULT false,
        archived_at timestamptz
    )
    """,
    "ALTER SEQUENCE record_ids OWNED BY records.id",
    "CREATE INDEX records_by_type ON records (account_id, object_type_id, id)",
    "CREATE INDEX records_by_created ON records (account_id, object_type_id, created_at)",
    "CREATE INDEX records_by_updated ON records (account_id, object_type_id, updated_at)",
    "CREATE INDEX records_search_tokens ON records USING gin (search_tokens)",
    # Email, additional emails and every hasUniqueValue property: one row per value, so the
    # database (not a read-before-write) refuses a second record with the same value.
    """
    CREATE TABLE unique_values (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        namespace text NOT NULL,
        value text NOT NULL,
        record_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        PRIMARY KEY (account_id, object_type_id, namespace, value)
    )
    """,
    "CREATE INDEX unique_values_by_record ON unique_values (record_id)",
    # Company domains are a lookup key, not unique (HubSpot lets companies share a domain).
    """
    CREATE INDEX records_company_domain ON records (account_id, lower(properties ->> 'domain'))
    WHERE object_type_id = '0-2'
    """,
    """
    CREATE TABLE property_definitions (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        name text NOT NULL,
        label text NOT NULL,
        type text NOT NULL,
        field_type text NOT NULL,
        group_name text NOT NULL,
        description text NOT NULL DEFAULT '',
        options jsonb NOT NULL DEFAULT '[]'::jsonb,
        display_order integer NOT NULL DEFAULT -1,
        has_unique_value boolean NOT NULL DEFAULT false,
        hidden boolean NOT NULL DEFAULT false,
        form_field boolean NOT NULL DEFAULT true,
        calculation_formula text,
        archived boolean NOT NULL DEFAULT false,
        archived_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type_id, name)
    )
    """,
    """
    CREATE TABLE property_groups (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        name text NOT NULL,
        label text NOT NULL,
        display_order integer NOT NULL DEFAULT -1,
        archived boolean NOT NULL DEFAULT false,
        PRIMARY KEY (account_id, object_type_id, name)
    )
    """,
    """
    CREATE TABLE associations (
        account_id bigint NOT NULL,
        from_object_type_id text NOT NULL,
        from_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        to_object_type_id text NOT NULL,
        to_id bigint NOT NULL REFERENCES records(id) ON DELETE CASCADE,
        category text NOT NULL,
        type_id integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (from_id, to_id, category, type_id)
    )
    """,
    "CREATE INDEX associations_by_from ON associations (account_id, from_id, to_object_type_id, to_id)",
    "CREATE INDEX associations_by_to ON associations (to_id)",
]

DROPS = [
    "DROP TABLE associations",
    "DROP TABLE property_groups",
    "DROP TABLE property_definitions",
    "DROP TABLE unique_values",
    "DROP TABLE records",
    "DROP FUNCTION corral_append_history(jsonb, jsonb, text, text, text)",
    "DROP FUNCTION corral_changed_properties(jsonb, jsonb)",
    "DROP FUNCTION corral_merge_properties(jsonb, jsonb, text[])",
    "DROP FUNCTION corral_lifecycle_rank(text)",
    "DROP FUNCTION corral_search_text(jsonb)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROPS:
        op.execute(statement)

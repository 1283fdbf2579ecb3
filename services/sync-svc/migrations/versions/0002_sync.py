"""connections, synced objects, field mappings, links with shadows, the outbound queue, create intents,
sync errors, the API-call ledger and cached describes

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    # One Salesforce org per account. `secrets` and `session` are Fernet tokens (crypto.SecretBox): client
    # secret, private key, refresh token; access token. Nothing secret is stored in any other column.
    """
    CREATE TABLE connections (
        account_id bigint PRIMARY KEY,
        status text NOT NULL,
        login_url text NOT NULL,
        flow text NOT NULL,
        client_id text NOT NULL,
        username text,
        secrets bytea,
        session bytea,
        instance_url text,
        org_id text,
        user_id text,
        user_name text,
        api_version text,
        connected_at timestamptz,
        disconnected_at timestamptz,
        last_error text,
        -- NOT_STARTED (saved for later) | RUNNING | PAUSED (by a person)
        sync_state text NOT NULL DEFAULT 'NOT_STARTED',
        started_at timestamptz,
        -- automatic suspensions: API_LIMIT (budget or Salesforce's allowance) | CONNECTION
        suspended text,
        suspended_until timestamptz,
        suspended_reason text,
        daily_api_calls integer,
        next_poll_at timestamptz,
        last_cycle_at timestamptz,
        last_cycle jsonb,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE sync_objects (
        account_id bigint NOT NULL,
        object_type text NOT NULL,
        salesforce_object text NOT NULL,
        enabled boolean NOT NULL DEFAULT false,
        -- inbound: SystemModstamp of the newest Salesforce change handled (null until sync starts), and the
        -- moment the sync started for the object: the re-read overlap never reaches before it
        watermark timestamptz,
        started_from timestamptz,
        last_polled_at timestamptz,
        last_cycle jsonb,
        counts jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type)
    )
    """,
    # Mappings are kept per Salesforce object, so switching contacts between Contact and Lead and back finds
    # the earlier mappings. The types are a snapshot of both definitions taken when the mapping was saved:
    # the engine converts values with them without asking either side.
    """
    CREATE TABLE field_mappings (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL,
        object_type text NOT NULL,
        salesforce_object text NOT NULL,
        property text NOT NULL,
        salesforce_field text NOT NULL,
        sync_rule text NOT NULL,
        standard boolean NOT NULL DEFAULT false,
        property_type text NOT NULL,
        property_field_type text NOT NULL,
        salesforce_type text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX field_mappings_property ON field_mappings (account_id, object_type, salesforce_object, property)",
    """CREATE UNIQUE INDEX field_mappings_field
       ON field_mappings (account_id, object_type, salesforce_object, lower(salesforce_field))""",
    """
    CREATE TABLE describes (
        account_id bigint NOT NULL,
        salesforce_object text NOT NULL,
        document jsonb NOT NULL,
        fetched_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, salesforce_object)
    )
    """,
    # A Corral record and its Salesforce record, each linked once. `shadow`: per property, the value both sides
    # held after the last sync (canonical Corral form); `salesforce_modstamp`: the newest SystemModstamp of
    # the Salesforce row already handled, so re-read overlaps are skipped.
    """
    CREATE TABLE links (
        account_id bigint NOT NULL,
        object_type text NOT NULL,
        record_id bigint NOT NULL,
        salesforce_object text NOT NULL,
        salesforce_id text NOT NULL,
        shadow jsonb NOT NULL DEFAULT '{}'::jsonb,
        salesforce_modstamp timestamptz,
        linked_at timestamptz NOT NULL DEFAULT now(),
        last_synced_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type, record_id)
    )
    """,
    "CREATE UNIQUE INDEX links_salesforce ON links (account_id, salesforce_object, salesforce_id)",
    # Corral changes waiting to be written, one row per record however many events it had (coalesced).
    """
    CREATE TABLE outbound_queue (
        account_id bigint NOT NULL,
        object_type text NOT NULL,
        record_id bigint NOT NULL,
        reason text NOT NULL,
        queued_at timestamptz NOT NULL DEFAULT now(),
        changed_at timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type, record_id)
    )
    """,
    "CREATE INDEX outbound_queue_due ON outbound_queue (account_id, next_attempt_at)",
    # Written and committed before a create is sent; settled against Salesforce (by the match key, or by what
    # the integration user created) when the answer was lost, so a crash never creates a record twice.
    """
    CREATE TABLE create_intents (
        account_id bigint NOT NULL,
        object_type text NOT NULL,
        record_id bigint NOT NULL,
        salesforce_object text NOT NULL,
        match_field text NOT NULL,
        match_value text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type, record_id)
    )
    """,
    # One open error per record and direction (record_key: the Corral id outbound, the Salesforce id inbound;
    # '' for the connection itself). Deleted when the record syncs.
    """
    CREATE TABLE sync_errors (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL,
        direction text NOT NULL,
        object_type text NOT NULL,
        record_key text NOT NULL,
        record_id bigint,
        salesforce_id text,
        category text NOT NULL,
        code text NOT NULL,
        message text NOT NULL,
        fields jsonb NOT NULL DEFAULT '[]'::jsonb,
        transient boolean NOT NULL DEFAULT false,
        attempts integer NOT NULL DEFAULT 1,
        first_seen_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        next_retry_at timestamptz
    )
    """,
    "CREATE UNIQUE INDEX sync_errors_record ON sync_errors (account_id, direction, object_type, record_key)",
    "CREATE INDEX sync_errors_by_category ON sync_errors (account_id, category, id)",
    # Salesforce data calls per account and minute: the rolling 24 h budget.
    """
    CREATE TABLE api_calls (
        account_id bigint NOT NULL,
        minute timestamptz NOT NULL,
        calls integer NOT NULL,
        PRIMARY KEY (account_id, minute)
    )
    """,
]

DROPS = ["DROP TABLE api_calls", "DROP TABLE sync_errors", "DROP TABLE create_intents", "DROP TABLE outbound_queue",
         "DROP TABLE links", "DROP TABLE describes", "DROP TABLE field_mappings", "DROP TABLE sync_objects",
         "DROP TABLE connections"]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROPS:
        op.execute(statement)

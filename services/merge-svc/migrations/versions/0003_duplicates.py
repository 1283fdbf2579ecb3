"""cluster merges (several secondaries per merge) and duplicate suggestions: matching settings, scan jobs, trained models, the block-key index, pairs,
clusters and dismissals

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = [
    # Cluster merges: one merge row, every secondary a participant with a snapshot.
    "ALTER TABLE merges ADD COLUMN secondary_ids jsonb",
    "ALTER TABLE merge_snapshots DROP CONSTRAINT merge_snapshots_pkey",
    "ALTER TABLE merge_snapshots ADD PRIMARY KEY (merge_id, record_id)",
    "ALTER TABLE merge_participants DROP CONSTRAINT merge_participants_pkey",
    "ALTER TABLE merge_participants ADD PRIMARY KEY (merge_id, role, record_id)",
    """
    CREATE TABLE duplicate_settings (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        settings jsonb NOT NULL,  -- {"properties": [{"name", "kind"}], "threshold"}
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type_id)
    )
    """,
    """
    CREATE TABLE duplicate_jobs (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        object_type text NOT NULL,
        -- PENDING, RUNNING, COMPLETE, FAILED
        status text NOT NULL DEFAULT 'PENDING',
        phase text,
        progress jsonb NOT NULL DEFAULT '{}'::jsonb,
        settings jsonb NOT NULL,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        heartbeat_at timestamptz
    )
    """,
    "CREATE INDEX duplicate_jobs_open ON duplicate_jobs (created_at) WHERE status IN ('PENDING', 'RUNNING')",
    "CREATE INDEX duplicate_jobs_account ON duplicate_jobs (account_id, object_type_id, id)",
    """
    CREATE TABLE duplicate_models (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        settings jsonb NOT NULL,
        model jsonb NOT NULL,         -- prior and per-level match weights (domain.matching.TrainedModel)
        splink_model jsonb NOT NULL,  -- splink's own saved model, m and u per level
        job_id bigint,
        -- when the scan that trained it began reading: record events older than that are already in it
        scanned_from timestamptz,
        trained_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type_id)
    )
    """,
    # The incremental path: each record's normalised compared values and the keys it is filed under.
    """
    CREATE TABLE duplicate_records (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        record_id bigint NOT NULL,
        features jsonb NOT NULL,
        fingerprint text NOT NULL,
        PRIMARY KEY (account_id, object_type_id, record_id)
    )
    """,
    """
    CREATE TABLE duplicate_block_keys (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        block_key text NOT NULL,
        record_id bigint NOT NULL,
        PRIMARY KEY (account_id, object_type_id, block_key, record_id)
    )
    """,
    "CREATE INDEX duplicate_block_keys_record ON duplicate_block_keys (account_id, object_type_id, record_id)",
    """
    CREATE TABLE duplicate_clusters (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        record_ids bigint[] NOT NULL,
        score double precision NOT NULL,  -- the weakest pair holding the cluster together
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX duplicate_clusters_list ON duplicate_clusters (account_id, object_type_id, id)",
    """
    CREATE TABLE duplicate_pairs (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        left_id bigint NOT NULL,   -- left_id < right_id
        right_id bigint NOT NULL,
        score double precision NOT NULL,
        matched_on jsonb NOT NULL,
        cluster_id bigint,
        PRIMARY KEY (account_id, object_type_id, left_id, right_id)
    )
    """,
    "CREATE INDEX duplicate_pairs_right ON duplicate_pairs (account_id, object_type_id, right_id)",
    "CREATE INDEX duplicate_pairs_cluster ON duplicate_pairs (cluster_id)",
    # A dismissed pair stays dismissed while both records' compared values are what they were.
    """
    CREATE TABLE duplicate_dismissals (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        left_id bigint NOT NULL,
        right_id bigint NOT NULL,
        left_fingerprint text NOT NULL,
        right_fingerprint text NOT NULL,
        dismissed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type_id, left_id, right_id)
    )
    """,
]

TABLES = ("duplicate_dismissals", "duplicate_pairs", "duplicate_clusters", "duplicate_block_keys",
          "duplicate_records", "duplicate_models", "duplicate_jobs", "duplicate_settings")


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE {table}")
    op.execute("ALTER TABLE merge_participants DROP CONSTRAINT merge_participants_pkey")
    op.execute("ALTER TABLE merge_participants ADD PRIMARY KEY (merge_id, role)")
    op.execute("ALTER TABLE merge_snapshots DROP CONSTRAINT merge_snapshots_pkey")
    op.execute("ALTER TABLE merge_snapshots ADD PRIMARY KEY (merge_id, role)")
    op.execute("ALTER TABLE merges DROP COLUMN secondary_ids")

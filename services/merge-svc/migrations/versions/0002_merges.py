"""merges, merge participants (history per record), snapshots and account merge rules

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE merges (
        id bigserial PRIMARY KEY,
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        object_type text NOT NULL,
        primary_id bigint NOT NULL,
        secondary_id bigint NOT NULL,
        result_id bigint,
        -- PENDING: snapshots stored, records-svc not answered yet; APPLIED; FAILED; UNMERGED
        status text NOT NULL DEFAULT 'PENDING',
        properties_to_keep jsonb NOT NULL DEFAULT '{}'::jsonb,
        plan jsonb NOT NULL DEFAULT '{}'::jsonb,
        merged_ids jsonb NOT NULL DEFAULT '[]'::jsonb,
        merges_involved integer NOT NULL DEFAULT 1,
        error text,
        unmerge_report jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        applied_at timestamptz,
        unmerged_at timestamptz
    )
    """,
    "CREATE INDEX merges_account_result ON merges (account_id, object_type_id, result_id)",
    """
    CREATE TABLE merge_participants (
        merge_id bigint NOT NULL REFERENCES merges (id) ON DELETE CASCADE,
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        record_id bigint NOT NULL,
        role text NOT NULL,  -- PRIMARY, SECONDARY, RESULT
        PRIMARY KEY (merge_id, role)
    )
    """,
    "CREATE INDEX merge_participants_record ON merge_participants (account_id, object_type_id, record_id)",
    """
    CREATE TABLE merge_snapshots (
        merge_id bigint NOT NULL REFERENCES merges (id) ON DELETE CASCADE,
        role text NOT NULL,  -- PRIMARY, SECONDARY
        record_id bigint NOT NULL,
        snapshot jsonb NOT NULL,
        PRIMARY KEY (merge_id, role)
    )
    """,
    """
    CREATE TABLE merge_rules (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        property text NOT NULL,
        strategy text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type_id, property)
    )
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("merge_rules", "merge_snapshots", "merge_participants", "merges"):
        op.execute(f"DROP TABLE {table}")

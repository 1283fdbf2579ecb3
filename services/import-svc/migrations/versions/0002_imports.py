"""imports, their files, row errors and checkpoints

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # import_checkpoints: one row per import, where the worker is (file position, data rows done in
    # it) and the counters so far; written in the same transaction as the batch's error rows.
    statements = [
        """CREATE TABLE imports (
            id bigserial PRIMARY KEY,
            account_id bigint NOT NULL,
            name text NOT NULL DEFAULT '',
            state text NOT NULL,
            request jsonb NOT NULL,
            mapped_object_type_ids text[] NOT NULL DEFAULT '{}',
            counters jsonb NOT NULL DEFAULT '{}'::jsonb,
            failure text,
            cancel_requested boolean NOT NULL DEFAULT false,
            lease_owner text,
            lease_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            completed_at timestamptz
        )""",
        """CREATE INDEX imports_account ON imports (account_id, id)""",
        """CREATE INDEX imports_runnable ON imports (state, id) WHERE state IN ('STARTED', 'DEFERRED', 'PROCESSING')""",
        """CREATE TABLE import_files (
            id bigserial PRIMARY KEY,
            import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
            position int NOT NULL,
            file_name text NOT NULL,
            path text NOT NULL,
            size_bytes bigint NOT NULL,
            file_format text NOT NULL,
            UNIQUE (import_id, position)
        )""",
        """CREATE TABLE import_errors (
            id bigserial PRIMARY KEY,
            import_id bigint NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
            file_id bigint NOT NULL,
            line_number bigint NOT NULL,
            error_type text NOT NULL,
            message text NOT NULL DEFAULT '',
            invalid_value text,
            column_number int,
            column_name text,
            object_type_id text,
            row_data jsonb NOT NULL DEFAULT '[]'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE INDEX import_errors_import ON import_errors (import_id, id)""",
        """CREATE TABLE import_checkpoints (
            import_id bigint PRIMARY KEY REFERENCES imports (id) ON DELETE CASCADE,
            file_position int NOT NULL DEFAULT 0,
            rows_done bigint NOT NULL DEFAULT 0,
            batches int NOT NULL DEFAULT 0,
            counters jsonb NOT NULL DEFAULT '{}'::jsonb,
            inflight_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
    ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE import_checkpoints, import_errors, import_files, imports")

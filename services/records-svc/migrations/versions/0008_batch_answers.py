"""a bulk write keyed by its caller answers a second call with the same key as it answered the first

Revision ID: 0008
Revises: 0007

A bulk call (`batchKey` on bulk-upsert and associations/bulk) stores its answer in the transaction
that writes the rows; a call that comes again with that key (a retry after a lost answer, an import
resumed after a crash) gets the stored answer back and writes nothing. Merges are keyed by their
merge id the same way. Answers are kept for a limited time (RECORDS_SVC_BATCH_ANSWER_RETENTION_HOURS)
and deleted by the account's later bulk calls.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE batch_answers (
            account_id bigint NOT NULL,
            batch_key text NOT NULL,
            answer bytea COMPRESSION lz4 NOT NULL,  -- the JSON answer as it was sent
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account_id, batch_key)
        )
    """)
    op.execute("CREATE INDEX batch_answers_expiry ON batch_answers (account_id, created_at)")


def downgrade() -> None:
    op.execute("DROP TABLE batch_answers")

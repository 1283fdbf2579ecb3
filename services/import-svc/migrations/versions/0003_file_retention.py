"""uploaded files are deleted after the retention period; the row stays

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The file row outlives the file: error rows point at its id, and the status lists it.
    op.execute("ALTER TABLE import_files ADD COLUMN deleted_at timestamptz")
    op.execute("CREATE INDEX import_files_kept ON import_files (import_id) WHERE deleted_at IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX import_files_kept")
    op.execute("ALTER TABLE import_files DROP COLUMN deleted_at")

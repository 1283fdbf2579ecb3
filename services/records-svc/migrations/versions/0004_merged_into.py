"""records absorbed by a merge point at the record that replaced them

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE records ADD COLUMN merged_into bigint")


def downgrade() -> None:
    op.execute("ALTER TABLE records DROP COLUMN merged_into")

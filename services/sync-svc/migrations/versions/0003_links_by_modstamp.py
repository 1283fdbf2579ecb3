"""links by the Salesforce stamp they handled: each poll counts them over the re-read window

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX links_by_modstamp ON links (account_id, salesforce_object, salesforce_modstamp)")


def downgrade() -> None:
    op.execute("DROP INDEX links_by_modstamp")

"""an import remembers the trace of the request that started it, so its worker continues that trace

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # W3C traceparent; NULL when tracing was off.
    op.execute("ALTER TABLE imports ADD COLUMN trace_parent text")


def downgrade() -> None:
    op.execute("ALTER TABLE imports DROP COLUMN trace_parent")

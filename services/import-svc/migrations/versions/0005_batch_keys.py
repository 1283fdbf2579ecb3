"""batches are replayed under their keys: the checkpoint pins how batches are cut, not when one started

Revision ID: 0005
Revises: 0004

Every records-svc write of a batch carries a batch key, and records-svc answers a key it has seen with
its first answer, so a batch sent again after a crash needs no reconstruction: `inflight_at` (when the
lost attempt started, for the old replay) goes. The batch size and the number of parallel calls a large
write is split into are pinned on the first run, so a resumed import cuts the same batches under the
same keys. `failed_attempts` counts attempts in a row that records-svc failed on the current batch.
An import in flight across this upgrade replays its current batch without keys once.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE import_checkpoints DROP COLUMN inflight_at,
            ADD COLUMN batch_size integer, ADD COLUMN parallel_calls integer,
            ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE import_checkpoints ADD COLUMN inflight_at timestamptz, DROP COLUMN batch_size,
            DROP COLUMN parallel_calls, DROP COLUMN failed_attempts
    """)

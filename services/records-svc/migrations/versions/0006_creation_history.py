"""records created in bulk keep their creation once, not one history version per value

Revision ID: 0006
Revises: 0005

A record created by an import stored, next to its values, a history holding each value again with
the same timestamp and source: about two thirds of the row, parsed and written for every imported
record. Such records now store an empty history and their creation source once (`created_source`:
timestamp, sourceType, sourceId). `corral_full_history` gives every reader the complete history: a
property absent from the stored history has not changed since the record was created, so its only
version is its current value with the creation source. Every write that appends to the history
expands it first and clears `created_source`, so the stored history is complete again from then on.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE records ADD COLUMN created_source jsonb")
    op.execute("""
        CREATE FUNCTION corral_full_history(history jsonb, properties jsonb, created_source jsonb)
        RETURNS jsonb IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
            SELECT CASE WHEN created_source IS NULL THEN coalesce(history, '{}'::jsonb) ELSE
                coalesce((SELECT jsonb_object_agg(p.key, jsonb_build_array(jsonb_build_object('value', p.value)
                                                                           || created_source))
                          FROM jsonb_each(properties) p
                          WHERE NOT coalesce(history, '{}'::jsonb) ? p.key), '{}'::jsonb)
                || coalesce(history, '{}'::jsonb)
            END
        $$
    """)


def downgrade() -> None:
    op.execute("UPDATE records SET history = corral_full_history(history, properties, created_source) "
               "WHERE created_source IS NOT NULL")
    op.execute("DROP FUNCTION corral_full_history(jsonb, jsonb, jsonb)")
    op.execute("ALTER TABLE records DROP COLUMN created_source")

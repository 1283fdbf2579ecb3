"""the Salesforce sync's id properties are looked up by value

Revision ID: 0007
Revises: 0006

sync-svc finds a Corral record by the Salesforce id it carries (`salesforcecontactid`, ...) when a
Salesforce record arrives without a link (after a crash between the two writes, or records imported from
Salesforce). Partial expression indexes cost nothing for records that never synced.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PROPERTIES = ("salesforcecontactid", "salesforceleadid", "salesforceaccountid", "salesforceopportunityid")


def upgrade() -> None:
    for name in PROPERTIES:
        op.execute(f"CREATE INDEX records_{name} ON records "
                   f"(account_id, object_type_id, lower(properties ->> '{name}')) WHERE properties ? '{name}'")


def downgrade() -> None:
    for name in PROPERTIES:
        op.execute(f"DROP INDEX records_{name}")

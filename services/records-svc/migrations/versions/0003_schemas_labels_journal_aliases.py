"""custom object schemas, association labels, the change journal, record aliases

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

STATEMENTS = [
    # Custom object type ids are `2-<n>`, n unique across the installation as in HubSpot.
    "CREATE SEQUENCE object_schema_numbers START WITH 1001",
    """
    CREATE TABLE object_schemas (
        account_id bigint NOT NULL,
        type_number bigint NOT NULL DEFAULT nextval('object_schema_numbers') UNIQUE,
        name text NOT NULL,
        label_singular text NOT NULL,
        label_plural text NOT NULL,
        description text NOT NULL DEFAULT '',
        primary_display_property text,
        secondary_display_properties text[] NOT NULL DEFAULT '{}',
        searchable_properties text[] NOT NULL DEFAULT '{}',
        required_properties text[] NOT NULL DEFAULT '{}',
        archived boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, type_number)
    )
    """,
    "CREATE UNIQUE INDEX object_schemas_name ON object_schemas (account_id, lower(name)) WHERE NOT archived",
    # User-defined association types: HubSpot numbers them per portal; ours come from one sequence.
    "CREATE SEQUENCE association_type_ids START WITH 1001",
    """
    CREATE TABLE association_definitions (
        account_id bigint NOT NULL,
        type_id integer NOT NULL DEFAULT nextval('association_type_ids'),
        from_object_type_id text NOT NULL,
        to_object_type_id text NOT NULL,
        category text NOT NULL DEFAULT 'USER_DEFINED',
        name text,
        label text,
        inverse_type_id integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, type_id)
    )
    """,
    "CREATE INDEX association_definitions_pair ON association_definitions (account_id, from_object_type_id, to_object_type_id)",
    # Which object types a custom object may associate with (schema `associatedObjects`).
    """
    CREATE TABLE schema_associations (
        account_id bigint NOT NULL,
        id bigserial PRIMARY KEY,
        from_object_type_id text NOT NULL,
        to_object_type_id text NOT NULL,
        name text,
        UNIQUE (account_id, from_object_type_id, to_object_type_id)
    )
    """,
    # One row per record written by an operation: the previous and the new values of the
    # properties it changed (a creation has no previous values), or an association it changed.
    """
    CREATE TABLE journal (
        id bigserial PRIMARY KEY,
        operation_id text NOT NULL,
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        record_id bigint NOT NULL,
        kind text NOT NULL,
        old_values jsonb,
        new_values jsonb,
        association jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        undone_at timestamptz
    )
    """,
    "CREATE INDEX journal_by_operation ON journal (account_id, operation_id, id)",
    "CREATE INDEX journal_by_record ON journal (record_id, id)",
    """
    CREATE TABLE record_aliases (
        account_id bigint NOT NULL,
        object_type_id text NOT NULL,
        alias_id bigint NOT NULL,
        record_id bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_id, object_type_id, alias_id)
    )
    """,
    "CREATE INDEX record_aliases_target ON record_aliases (record_id)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("record_aliases", "journal", "schema_associations", "association_definitions", "object_schemas"):
        op.execute(f"DROP TABLE {table}")
    op.execute("DROP SEQUENCE association_type_ids")
    op.execute("DROP SEQUENCE object_schema_numbers")

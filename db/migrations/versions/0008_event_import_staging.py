"""Staging table of event imports: customer_event_staging.

An import bulk-loads its validated rows here (COPY on PostgreSQL, LOAD DATA on MariaDB) and
inserts them into customers and customer_events with one set-based statement each, deleting
its rows in the same transaction. Rows of concurrent imports are told apart by import_id.
On PostgreSQL the table is UNLOGGED: what it holds never outlives a transaction, so it needs
no write-ahead log (a crash empties it, which is all it would need).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from db.types import Timestamp, exact_string

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID_LENGTH = 64


def upgrade() -> None:
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "customer_event_staging",
        sa.Column("import_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("file_row", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_id", exact_string(ID_LENGTH), nullable=False),
        sa.Column("customer_id", exact_string(ID_LENGTH), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", Timestamp, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=True),
        comment="Work area of running imports; empty outside their transaction.",
        prefixes=unlogged,
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("customer_event_staging")

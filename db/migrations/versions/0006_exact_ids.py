"""Ids compared exactly on MySQL/MariaDB: a binary collation for every string id column.

The default collations there are case-insensitive: `c1` and `C1` were one customer. SQLite
and PostgreSQL compare exactly already; this revision changes nothing there.

The foreign key from customer_events to customers is dropped around the change (MariaDB
refuses to change a referenced column's collation). Events whose customer differed from
its customers row only in case (imported as `C1` after `c1`) get a customers row of their
own, as an import would have created. Downgrading refuses, before changing anything, while
ids that the previous collation would merge exist.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from db.types import exact_string

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID_LENGTH = 64
# Each table's string id columns, then the columns of its primary key.
ID_COLUMNS = {
    "customers": (("customer_id",), ("customer_id",)),
    "customer_events": (("event_id", "customer_id"), ("event_id",)),
    "propensity_scores": (("customer_id",), ("score_run_id", "customer_id")),
    "propensity_score_staging": (("customer_id",), ("score_run_id", "customer_id")),
}
EVENTS_FOREIGN_KEY = ("customer_events", "customers", ["customer_id"], ["customer_id"])


def upgrade() -> None:
    if not _on_mysql():
        return
    foreign_key = _drop_events_foreign_key()
    _alter_ids(exact_string(ID_LENGTH))
    op.execute(
        "INSERT INTO customers (customer_id, is_active, created_at) "
        "SELECT e.customer_id, TRUE, MIN(e.occurred_at) FROM customer_events e "
        "LEFT JOIN customers c ON c.customer_id = e.customer_id "
        "WHERE c.customer_id IS NULL GROUP BY e.customer_id"
    )
    op.create_foreign_key(foreign_key, *EVENTS_FOREIGN_KEY)


def downgrade() -> None:
    if not _on_mysql():
        return
    _refuse_keys_the_default_collation_merges()
    foreign_key = _drop_events_foreign_key()
    # Without a collation the columns take their table's default again.
    _alter_ids(sa.String(ID_LENGTH))
    op.create_foreign_key(foreign_key, *EVENTS_FOREIGN_KEY)


def _on_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def _drop_events_foreign_key() -> str:
    """Drops the events' foreign key to customers; its name, to recreate it by."""
    (foreign_key,) = sa.inspect(op.get_bind()).get_foreign_keys("customer_events")
    op.drop_constraint(foreign_key["name"], "customer_events", type_="foreignkey")
    return foreign_key["name"]


def _alter_ids(type_: sa.types.TypeEngine) -> None:
    for table, (columns, _key) in ID_COLUMNS.items():
        for column in columns:
            op.alter_column(
                table, column, type_=type_, existing_type=type_, existing_nullable=False
            )


def _refuse_keys_the_default_collation_merges() -> None:
    bind = op.get_bind()
    for table, (columns, key) in ID_COLUMNS.items():
        charset, collation = bind.execute(
            sa.text(
                "SELECT c.CHARACTER_SET_NAME, c.COLLATION_NAME "
                "FROM information_schema.TABLES t JOIN information_schema.COLLATIONS c "
                "ON c.COLLATION_NAME = t.TABLE_COLLATION "
                "WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = :table"
            ),
            {"table": table},
        ).one()
        compared = ", ".join(
            f"CONVERT({name} USING {charset}) COLLATE {collation}" if name in columns else name
            for name in key
        )
        merged = bind.execute(
            sa.text(f"SELECT 1 FROM {table} GROUP BY {compared} HAVING COUNT(*) > 1 LIMIT 1")
        ).first()
        if merged is not None:
            raise RuntimeError(
                f"cannot downgrade: {table} holds ids that differ only in case or accents, "
                f"which the collation {collation} would merge"
            )

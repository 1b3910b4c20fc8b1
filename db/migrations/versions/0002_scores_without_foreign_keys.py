"""Score tables without foreign keys to score_runs.

The per-row foreign-key check was the largest cost of publishing: PostgreSQL checks each
inserted row on its own (327,833 scores: 1.5-1.9 s of a 4.0 s publication, and as much
again while staging). Rows of both tables are only written under a run row that exists and
is locked, and runs are deleted together with their scores (db.scores.delete_runs); the
current_propensity_scores view joins score_runs, so it never shows a score without its run.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from db.views import CURRENT_SCORES_VIEW_0001

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCORE_TABLES = ("propensity_scores", "propensity_score_staging")
# SQLite's constraints have no names: batch mode names them by this convention to drop them.
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s"}


def _with_current_view(change) -> None:
    """SQLite rebuilds a table to change its constraints, which a view on it would block."""
    op.execute("DROP VIEW IF EXISTS current_propensity_scores")
    change()
    op.execute(CURRENT_SCORES_VIEW_0001)


def upgrade() -> None:
    def drop() -> None:
        bind = op.get_bind()
        for table in SCORE_TABLES:
            if bind.dialect.name == "sqlite":
                with op.batch_alter_table(table, naming_convention=SQLITE_NAMES) as batch:
                    batch.drop_constraint(f"fk_{table}_score_run_id", type_="foreignkey")
            else:
                for key in sa.inspect(bind).get_foreign_keys(table):
                    op.drop_constraint(key["name"], table, type_="foreignkey")

    _with_current_view(drop)


def downgrade() -> None:
    def add() -> None:
        for table in SCORE_TABLES:
            with op.batch_alter_table(table) as batch:
                batch.create_foreign_key(
                    f"fk_{table}_score_run_id",
                    "score_runs",
                    ["score_run_id"],
                    ["id"],
                    ondelete="CASCADE",
                )

    _with_current_view(add)

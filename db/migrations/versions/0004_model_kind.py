"""model_versions.kind: which kind of model a row holds (gru, lstm, gru_hybrid, ..., gbm).

Every contender of a retrain can now be the champion. Rows written before held recurrent
networks, so their kind is their cell. `cell` stays for compatibility and equals `kind`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


KIND_COMMENT = "gru, lstm, gru_hybrid, lstm_hybrid, logistic or gbm"
CELL_COMMENTS = ("gru or lstm", "kept for compatibility: equals kind")


def upgrade() -> None:
    # A plain ADD COLUMN: batch mode would copy model_versions on SQLite, which its
    # score_runs' foreign key forbids. The default only fills the rows that exist.
    op.add_column(
        "model_versions",
        sa.Column(
            "kind", sa.String(16), nullable=False, server_default="gru", comment=KIND_COMMENT
        ),
    )
    op.execute("UPDATE model_versions SET kind = cell")
    if op.get_bind().dialect.name != "sqlite":  # SQLite keeps no defaults to drop, no comments
        op.alter_column(
            "model_versions",
            "kind",
            server_default=None,
            existing_type=sa.String(16),
            existing_nullable=False,
            existing_comment=KIND_COMMENT,
        )
        _comment_cell(*CELL_COMMENTS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        _comment_cell(*reversed(CELL_COMMENTS))
    op.drop_column("model_versions", "kind")


def _comment_cell(old: str, new: str) -> None:
    op.alter_column(
        "model_versions",
        "cell",
        existing_type=sa.String(16),
        existing_nullable=False,
        comment=new,
        existing_comment=old,
    )

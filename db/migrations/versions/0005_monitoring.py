"""Monitoring tables: realized outcomes of matured score runs, their deciles, drift per run,
and the score_run_monitoring view for BI dashboards.

The tables have no foreign keys: a run's outcome and drift rows outlive its pruned scores.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from db.types import Timestamp
from db.views import MONITORING_VIEW_0005

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "score_run_outcomes",
        sa.Column("score_run_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("evaluated_at", Timestamp, nullable=False),
        sa.Column("as_of", Timestamp, nullable=False),
        sa.Column("model_version_id", sa.Integer, nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("n_customers", sa.Integer, nullable=False),
        sa.Column("n_converted", sa.Integer, nullable=False),
        sa.Column("base_rate", sa.Double, nullable=False),
        sa.Column("roc_auc", sa.Double, nullable=True),
        sa.Column("pr_auc", sa.Double, nullable=True),
        sa.Column("log_loss", sa.Double, nullable=False),
        sa.Column("brier", sa.Double, nullable=False),
        sa.Column("ece", sa.Double, nullable=False),
        sa.Column("top_decile_lift", sa.Double, nullable=True),
        sa.Column(
            "note",
            sa.Text,
            nullable=True,
            comment="Why a metric is NULL (e.g. no conversions in the horizon).",
        ),
        comment="One row per evaluated score run; kept when the run's scores are pruned.",
    )
    op.create_table(
        "score_run_outcome_deciles",
        sa.Column("score_run_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("decile", sa.SmallInteger, primary_key=True, comment="1 = best"),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column(
            "expected", sa.Double, nullable=False, comment="Sum of the decile's propensities."
        ),
        sa.Column("actual", sa.Integer, nullable=False),
        comment="Expected and actual conversions per decile of an evaluated run.",
    )
    op.create_table(
        "score_run_drift",
        sa.Column("score_run_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("feature", sa.String(96), primary_key=True),
        sa.Column("psi", sa.Double, nullable=False),
        comment="Population stability index of each feature and the score against the "
        "champion's training reference, per score run.",
    )
    op.execute(MONITORING_VIEW_0005)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS score_run_monitoring")
    op.drop_table("score_run_drift")
    op.drop_table("score_run_outcome_deciles")
    op.drop_table("score_run_outcomes")

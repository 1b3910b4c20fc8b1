"""Reasons with their weight, expected value beside the propensity, in-sample runs, judged
revenue, erasure and its log, signed artifacts.

- propensity_scores and propensity_score_staging: reason_1_weight..reason_3_weight (the
  reason's contribution to the score's log-odds) and expected_value (the expected sum of the
  target event's amount in the horizon); propensity_scores: value_decile.
- score_runs.in_sample: a run at an as_of its model's training labels reach, never judged as
  a forward result (score_run_monitoring leaves it out).
- score_run_outcomes: realized and predicted revenue, normalized Gini, mean absolute error
  and the top value decile's share of the revenue; score_run_outcome_deciles: the customers,
  expected and actual revenue of the run's value decile with that number.
- customer_suppressions: keyed hashes of erased customers' ids (never the ids), which
  imports skip; erasures: one row per `propensity forget` or `propensity purge`, with the
  rows removed per table and never an id.
- model_versions.artifact_signature: a keyed signature of the artifact (HMAC-SHA256), which
  a swapped artifact cannot carry.

The two views are written anew around the change (SQLite cannot alter a table a view reads
in a batch) and written back as they were on downgrade.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

from db.types import Timestamp
from db.views import (
    CURRENT_SCORES_VIEW,
    CURRENT_SCORES_VIEW_0001,
    MONITORING_VIEW,
    MONITORING_VIEW_0005,
)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SCORE_TABLES = ("propensity_scores", "propensity_score_staging")
REASON_WEIGHTS = ("reason_1_weight", "reason_2_weight", "reason_3_weight")
OUTCOME_VALUE_FIGURES = (
    "realized_revenue",
    "predicted_revenue",
    "value_gini",
    "value_mae",
    "top_decile_revenue_share",
)
EXPECTED_VALUE = "Expected sum of the target event's amount in the horizon."
VALUE_DECILE = "1 = best 10% by expected value"
IN_SAMPLE = "Scored at an as_of its model's training labels reach: never a forward result."
DECILE_VALUE_COLUMNS = (
    ("value_customers", sa.Integer),
    ("expected_revenue", sa.Double),
    ("actual_revenue", sa.Double),
)


def upgrade() -> None:
    _drop_views()
    for table in SCORE_TABLES:
        for name in REASON_WEIGHTS:
            op.add_column(table, sa.Column(name, sa.Double, nullable=True))
        op.add_column(
            table, sa.Column("expected_value", sa.Double, nullable=True, comment=EXPECTED_VALUE)
        )
    op.add_column(
        "propensity_scores",
        sa.Column("value_decile", sa.SmallInteger, nullable=True, comment=VALUE_DECILE),
    )
    op.add_column(
        "score_runs",
        sa.Column(
            "in_sample",
            sa.Boolean,
            nullable=False,
            server_default=sa.false(),
            comment=IN_SAMPLE,
        ),
    )
    for name in OUTCOME_VALUE_FIGURES:
        op.add_column("score_run_outcomes", sa.Column(name, sa.Double, nullable=True))
    for name, type_ in DECILE_VALUE_COLUMNS:
        op.add_column("score_run_outcome_deciles", sa.Column(name, type_, nullable=True))
    op.add_column("model_versions", sa.Column("artifact_signature", sa.String(64), nullable=True))
    op.create_table(
        "customer_suppressions",
        sa.Column("customer_key", sa.String(64), primary_key=True),
        sa.Column("suppressed_at", Timestamp, nullable=False),
        comment="Erased customers, by a keyed hash of their id: imports skip them.",
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("happened_at", Timestamp, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, comment="forget or purge"),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("rows_removed", sa.JSON, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        comment="One row per erasure or purge: counts per table, never an id.",
    )
    op.execute(CURRENT_SCORES_VIEW)
    op.execute(MONITORING_VIEW)


def downgrade() -> None:
    # Plain DROP COLUMNs: batch mode would copy model_versions on SQLite, which its
    # score_runs' foreign key forbids.
    _drop_views()
    op.drop_table("erasures")
    op.drop_table("customer_suppressions")
    op.drop_column("model_versions", "artifact_signature")
    for name, _ in DECILE_VALUE_COLUMNS:
        op.drop_column("score_run_outcome_deciles", name)
    for name in OUTCOME_VALUE_FIGURES:
        op.drop_column("score_run_outcomes", name)
    op.drop_column("score_runs", "in_sample")
    op.drop_column("propensity_scores", "value_decile")
    for table in SCORE_TABLES:
        for name in ("expected_value", *REASON_WEIGHTS):
            op.drop_column(table, name)
    op.execute(CURRENT_SCORES_VIEW_0001)
    op.execute(MONITORING_VIEW_0005)


def _drop_views() -> None:
    op.execute("DROP VIEW IF EXISTS current_propensity_scores")
    op.execute("DROP VIEW IF EXISTS score_run_monitoring")

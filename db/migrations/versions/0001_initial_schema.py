"""Initial schema: customers, events, model registry, score runs, scores, current view.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from db.types import Artifact, Timestamp
from db.views import CURRENT_SCORES_VIEW_0001

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        comment="Customers known to the service; is_active selects who is scored.",
    )
    op.create_table(
        "customer_events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column(
            "customer_id",
            sa.String(64),
            sa.ForeignKey("customers.customer_id"),
            nullable=False,
        ),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("occurred_at", Timestamp, nullable=False, comment="UTC"),
        sa.Column("amount", sa.Numeric(18, 4), nullable=True),
        comment="Customer event log, timestamps in UTC.",
    )
    op.create_index(
        "ix_customer_events_customer_id_occurred_at",
        "customer_events",
        ["customer_id", "occurred_at"],
    )
    op.create_index("ix_customer_events_occurred_at", "customer_events", ["occurred_at"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column(
            "trained_as_of",
            Timestamp,
            nullable=False,
            comment="Data cutoff of the training run (UTC).",
        ),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("cell", sa.String(16), nullable=False, comment="gru or lstm"),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column(
            "metrics",
            sa.JSON(),
            nullable=False,
            comment="Holdout metrics of this model, the champion and baselines.",
        ),
        sa.Column(
            "status",
            sa.String(16),
            nullable=False,
            comment="candidate, champion, rejected or retired",
        ),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("artifact", Artifact, nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        comment="One row per trained model, with its artifact and metrics.",
    )
    op.create_table(
        "score_runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("as_of", Timestamp, nullable=False),
        sa.Column(
            "model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False
        ),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("status", sa.String(16), nullable=False, comment="running, succeeded or failed"),
        sa.Column("n_scored", sa.Integer(), nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        comment="One row per scoring run; only succeeded runs are ever visible.",
    )
    op.create_index("ix_score_runs_status_as_of", "score_runs", ["status", "as_of"])
    op.create_table(
        "propensity_scores",
        sa.Column(
            "score_run_id",
            sa.Integer(),
            sa.ForeignKey("score_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column(
            "propensity",
            sa.Double(),
            nullable=False,
            comment="Calibrated probability of the target event in the horizon.",
        ),
        sa.Column("decile", sa.SmallInteger(), nullable=True, comment="1 = best"),
        sa.Column("rank", sa.Integer(), nullable=True, comment="1 = best"),
        sa.Column("reason_1", sa.String(96), nullable=True),
        sa.Column("reason_2", sa.String(96), nullable=True),
        sa.Column("reason_3", sa.String(96), nullable=True),
        comment="Scores of every run; read current_propensity_scores instead.",
    )
    op.create_table(
        "propensity_score_staging",
        sa.Column(
            "score_run_id",
            sa.Integer(),
            sa.ForeignKey("score_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column(
            "propensity",
            sa.Double(),
            nullable=False,
            comment="Calibrated probability of the target event in the horizon.",
        ),
        sa.Column("reason_1", sa.String(96), nullable=True),
        sa.Column("reason_2", sa.String(96), nullable=True),
        sa.Column("reason_3", sa.String(96), nullable=True),
        comment="Work area of running score runs; never read by consumers.",
    )
    op.create_table(
        "service_locks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("acquired_at", Timestamp, nullable=False),
        comment="Locks held by running jobs; a row exists while one runs.",
    )
    op.execute(CURRENT_SCORES_VIEW_0001)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS current_propensity_scores")
    op.drop_table("service_locks")
    op.drop_table("propensity_score_staging")
    op.drop_table("propensity_scores")
    op.drop_table("score_runs")
    op.drop_table("model_versions")
    op.drop_table("customer_events")
    op.drop_table("customers")

"""Typed SQLAlchemy models of the tables SQL consumers and the service share.

Names and columns of the score tables are a contract (see the README's "Score tables for
SQL consumers"); change them only through a migration.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import Artifact, Timestamp, exact_string

CUSTOMER_ID_LENGTH = 64
EVENT_ID_LENGTH = 64
EVENT_TYPE_LENGTH = 64


class ModelStatus(StrEnum):
    """model_versions.status; stored as its plain string value."""

    CANDIDATE = "candidate"
    CHAMPION = "champion"
    REJECTED = "rejected"
    RETIRED = "retired"


class ScoreRunStatus(StrEnum):
    """score_runs.status; stored as its plain string value."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Its process died (killed, its host lost): found `running` by the next run.
    ABANDONED = "abandoned"


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = {"comment": "Customers known to the service; is_active selects who is scored."}

    customer_id: Mapped[str] = mapped_column(exact_string(CUSTOMER_ID_LENGTH), primary_key=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class CustomerEvent(Base):
    __tablename__ = "customer_events"
    __table_args__ = (
        # Scoring and retraining read their customers' events through this index; it holds
        # every column they read, so an event log stored in time order is read without a
        # visit to the table per event, on every database (migrations 0003 and 0010).
        Index(
            "ix_customer_events_customer_id_occurred_at",
            "customer_id",
            "occurred_at",
            "event_type",
            "amount",
        ),
        Index("ix_customer_events_occurred_at", "occurred_at"),
        {"comment": "Customer event log, timestamps in UTC."},
    )

    # The source's own id when it has one, else a content hash: re-imports add nothing.
    event_id: Mapped[str] = mapped_column(exact_string(EVENT_ID_LENGTH), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        exact_string(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id"), nullable=False
    )
    event_type: Mapped[str] = mapped_column(String(EVENT_TYPE_LENGTH), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False, comment="UTC")
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4), nullable=True)


class CustomerEventStaging(Base):
    """Validated rows of an import in progress, bulk-loaded (COPY on PostgreSQL) and then
    inserted into customers and customer_events by one set-based statement each. Rows are
    written and deleted in the import's transaction: outside one the table is empty."""

    __tablename__ = "customer_event_staging"
    __table_args__ = {
        "comment": "Work area of running imports; empty outside their transaction.",
        # On SQLite the rows live in their key's B-tree: one write per row, not two.
        "sqlite_with_rowid": False,
    }

    # Each import's own random id keeps concurrent imports apart; file_row (the row in the
    # file) orders its rows, so that of two rows sharing an event id the first is kept.
    import_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    file_row: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # The same types as customer_events' columns: rows are copied across as they are.
    event_id: Mapped[str] = mapped_column(exact_string(EVENT_ID_LENGTH), nullable=False)
    customer_id: Mapped[str] = mapped_column(exact_string(CUSTOMER_ID_LENGTH), nullable=False)
    event_type: Mapped[str] = mapped_column(String(EVENT_TYPE_LENGTH), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 4), nullable=True)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = {"comment": "One row per trained model, with its artifact and metrics."}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    trained_as_of: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, comment="Data cutoff of the training run (UTC)."
    )
    horizon_days: Mapped[int] = mapped_column(Integer, nullable=False)
    cell: Mapped[str] = mapped_column(
        String(16), nullable=False, comment="kept for compatibility: equals kind"
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    kind: Mapped[str] = mapped_column(
        String(16), nullable=False, comment="gru, lstm, gru_hybrid, lstm_hybrid, logistic or gbm"
    )
    metrics: Mapped[dict[str, Any]] = mapped_column(
        JSON, nullable=False, comment="Holdout metrics of this model, the champion and baselines."
    )
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, comment="candidate, champion, rejected or retired"
    )
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    artifact: Mapped[bytes] = mapped_column(Artifact, nullable=False)
    artifact_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    artifact_signature: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ScoreRun(Base):
    __tablename__ = "score_runs"
    __table_args__ = (
        Index("ix_score_runs_status_as_of", "status", "as_of"),
        {"comment": "One row per scoring run; only succeeded runs are ever visible."},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), nullable=False)
    started_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, comment="running, succeeded, failed or abandoned"
    )
    n_scored: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    in_sample: Mapped[bool] = mapped_column(
        Boolean,
        nullable=False,
        default=False,
        server_default=false(),
        comment="Scored at an as_of its model's training labels reach: never a forward result.",
    )


class ScoreColumns:
    """Columns shared by published and staged scores."""

    # No foreign key: see migration 0002 (a per-row check was most of the publication time).
    score_run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(exact_string(CUSTOMER_ID_LENGTH), primary_key=True)
    propensity: Mapped[float] = mapped_column(
        Double, nullable=False, comment="Calibrated probability of the target event in the horizon."
    )
    reason_1: Mapped[str | None] = mapped_column(String(96), nullable=True)
    reason_2: Mapped[str | None] = mapped_column(String(96), nullable=True)
    reason_3: Mapped[str | None] = mapped_column(String(96), nullable=True)
    # A reason's contribution to the score's log-odds: above 0 it raises the score.
    reason_1_weight: Mapped[float | None] = mapped_column(Double, nullable=True)
    reason_2_weight: Mapped[float | None] = mapped_column(Double, nullable=True)
    reason_3_weight: Mapped[float | None] = mapped_column(Double, nullable=True)
    expected_value: Mapped[float | None] = mapped_column(
        Double, nullable=True, comment="Expected sum of the target event's amount in the horizon."
    )


class PropensityScore(ScoreColumns, Base):
    __tablename__ = "propensity_scores"
    __table_args__ = {"comment": "Scores of every run; read current_propensity_scores instead."}

    decile: Mapped[int | None] = mapped_column(SmallInteger, nullable=True, comment="1 = best")
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True, comment="1 = best")
    value_decile: Mapped[int | None] = mapped_column(
        SmallInteger, nullable=True, comment="1 = best 10% by expected value"
    )


class PropensityScoreStaging(ScoreColumns, Base):
    """Unranked scores of a running run; ranked into propensity_scores when it is published."""

    __tablename__ = "propensity_score_staging"
    __table_args__ = {"comment": "Work area of running score runs; never read by consumers."}


class ServiceLock(Base):
    """One row per held lease: keeps two retrains (or two score runs) from overlapping."""

    __tablename__ = "service_locks"
    __table_args__ = {"comment": "Leases of running jobs, renewed by their heartbeat."}

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(
        Timestamp, nullable=False, comment="UTC; a lease not renewed by then belongs to a dead run"
    )


class ScoreRunOutcome(Base):
    """Realized outcome of a matured score run: its scores judged against what happened."""

    __tablename__ = "score_run_outcomes"
    __table_args__ = {
        "comment": "One row per evaluated score run; kept when the run's scores are pruned."
    }

    # No foreign key: monitoring history outlives the scores it judged.
    score_run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    evaluated_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    as_of: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    model_version_id: Mapped[int] = mapped_column(Integer, nullable=False)
    horizon_days: Mapped[int] = mapped_column(Integer, nullable=False)
    n_customers: Mapped[int] = mapped_column(Integer, nullable=False)
    n_converted: Mapped[int] = mapped_column(Integer, nullable=False)
    base_rate: Mapped[float] = mapped_column(Double, nullable=False)
    roc_auc: Mapped[float | None] = mapped_column(Double, nullable=True)
    pr_auc: Mapped[float | None] = mapped_column(Double, nullable=True)
    log_loss: Mapped[float] = mapped_column(Double, nullable=False)
    brier: Mapped[float] = mapped_column(Double, nullable=False)
    ece: Mapped[float] = mapped_column(Double, nullable=False)
    top_decile_lift: Mapped[float | None] = mapped_column(Double, nullable=True)
    note: Mapped[str | None] = mapped_column(
        Text, nullable=True, comment="Why a metric is NULL (e.g. no conversions in the horizon)."
    )
    realized_revenue: Mapped[float | None] = mapped_column(Double, nullable=True)
    predicted_revenue: Mapped[float | None] = mapped_column(Double, nullable=True)
    value_gini: Mapped[float | None] = mapped_column(Double, nullable=True)
    value_mae: Mapped[float | None] = mapped_column(Double, nullable=True)
    top_decile_revenue_share: Mapped[float | None] = mapped_column(Double, nullable=True)


class ScoreRunOutcomeDecile(Base):
    __tablename__ = "score_run_outcome_deciles"
    __table_args__ = {"comment": "Expected and actual conversions per decile of an evaluated run."}

    score_run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    decile: Mapped[int] = mapped_column(SmallInteger, primary_key=True, comment="1 = best")
    customers: Mapped[int] = mapped_column(Integer, nullable=False)
    expected: Mapped[float] = mapped_column(
        Double, nullable=False, comment="Sum of the decile's propensities."
    )
    actual: Mapped[int] = mapped_column(Integer, nullable=False)
    # The run's value decile with this number (1 = best by expected value).
    value_customers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expected_revenue: Mapped[float | None] = mapped_column(Double, nullable=True)
    actual_revenue: Mapped[float | None] = mapped_column(Double, nullable=True)


class ScoreRunDrift(Base):
    __tablename__ = "score_run_drift"
    __table_args__ = {
        "comment": "Population stability index of each feature and the score against the "
        "champion's training reference, per score run."
    }

    score_run_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    feature: Mapped[str] = mapped_column(String(96), primary_key=True)
    psi: Mapped[float] = mapped_column(Double, nullable=False)


class CustomerSuppression(Base):
    """An erased customer, by a keyed hash of their id (db.erasure), never the id."""

    __tablename__ = "customer_suppressions"
    __table_args__ = {
        "comment": "Erased customers, by a keyed hash of their id: imports skip them."
    }

    customer_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    suppressed_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class Erasure(Base):
    __tablename__ = "erasures"
    __table_args__ = {"comment": "One row per erasure or purge: counts per table, never an id."}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    happened_at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, comment="forget or purge")
    customers: Mapped[int] = mapped_column(Integer, nullable=False)
    rows_removed: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

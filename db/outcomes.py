"""Realized outcomes of published score runs, as the database holds them: the runs awaiting
their outcome, a run's published scores, the customers with a target event in a window
(one aggregate query on the event source: events are never read into memory), and the
stored result, replaced whole in the caller's transaction."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, case, delete, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from db.errors import DataLayerError
from db.models import (
    ModelVersion,
    PropensityScore,
    ScoreRun,
    ScoreRunOutcome,
    ScoreRunOutcomeDecile,
    ScoreRunStatus,
)
from db.source import EventColumns
from db.timestamps import utc_now


class NotEvaluable(DataLayerError):
    pass


class OutcomeFinal(NotEvaluable):
    """The run's outcome is stored: a judged result is rewritten only when re-judging is asked."""


@dataclass(frozen=True)
class RunToEvaluate:
    """A succeeded score run and what its model says about its outcome: the horizon and the
    manifest (model_versions.config) naming the target event; None where the model row
    is gone."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    kind: str | None
    horizon_days: int | None
    model_config: dict[str, Any] | None

    @property
    def matures_at(self) -> datetime | None:
        """When the horizon has passed: the source's events must reach this time."""
        return None if self.horizon_days is None else self.as_of + timedelta(days=self.horizon_days)


def _runs_with_their_models():
    return select(
        ScoreRun.id,
        ScoreRun.as_of,
        ScoreRun.model_version_id,
        ModelVersion.kind,
        ModelVersion.horizon_days,
        ModelVersion.config,
    ).outerjoin(ModelVersion, ModelVersion.id == ScoreRun.model_version_id)


def runs_awaiting_outcome(session: Session) -> list[RunToEvaluate]:
    """Succeeded runs without an outcome yet, oldest first."""
    query = (
        _runs_with_their_models()
        .where(
            ScoreRun.status == ScoreRunStatus.SUCCEEDED,
            # Its model saw its horizon in training: no forward result to judge.
            ScoreRun.in_sample.is_(False),
            ~exists().where(ScoreRunOutcome.score_run_id == ScoreRun.id),
        )
        .order_by(ScoreRun.as_of, ScoreRun.id)
    )
    return [RunToEvaluate(*row) for row in session.execute(query)]


def run_to_evaluate(session: Session, score_run_id: int) -> RunToEvaluate:
    """One succeeded run, evaluated or not; any other is refused naming why."""
    status = session.scalar(select(ScoreRun.status).where(ScoreRun.id == score_run_id))
    if status is None:
        raise NotEvaluable(f"score run {score_run_id} does not exist")
    if status != ScoreRunStatus.SUCCEEDED:
        raise NotEvaluable(
            f"score run {score_run_id} is {status}: only succeeded runs have an outcome"
        )
    if session.scalar(select(ScoreRun.in_sample).where(ScoreRun.id == score_run_id)):
        raise NotEvaluable(
            f"score run {score_run_id} is in sample: its model's training labels reach into "
            "its horizon, so it has no forward result"
        )
    row = session.execute(_runs_with_their_models().where(ScoreRun.id == score_run_id)).one()
    return RunToEvaluate(*row)


RUN_SCORE_COLUMNS = ("customer_id", "propensity", "decile", "expected_value", "value_decile")


def run_scores(connection: Connection, score_run_id: int) -> pd.DataFrame:
    """customer_id, propensity, decile, expected_value and value_decile (NULL for a run
    published without values) of every customer the run published; empty once its scores
    are pruned."""
    score = PropensityScore
    columns = [getattr(score, name) for name in RUN_SCORE_COLUMNS]
    rows = connection.execute(select(*columns).where(score.score_run_id == score_run_id)).all()
    return pd.DataFrame(rows, columns=list(RUN_SCORE_COLUMNS))


def converted_customers(
    connection: Connection,
    columns: EventColumns,
    target_event: str,
    after: datetime,
    until: datetime,
) -> pd.DataFrame:
    """The customers with a target event in (after, until], the label of the window as
    training defines it, one row each: customer_id, spend (the events' amounts summed, net
    of refunds, never below 0; NULL where the source has no amount) and missing_amounts
    (their events without an amount, which count as 0)."""
    in_window = (
        columns.event_type == target_event,
        columns.occurred_at > columns.moment(after),
        columns.occurred_at <= columns.moment(until),
    )
    amount = columns.amount
    figures = (
        [func.coalesce(func.sum(amount), 0), func.sum(case((amount.is_(None), 1), else_=0))]
        if amount is not None
        else [literal(None), literal(0)]
    )
    query = select(columns.customer_id, *figures).where(*in_window).group_by(columns.customer_id)
    frame = pd.DataFrame(
        connection.execute(query).all(), columns=["customer_id", "spend", "missing_amounts"]
    )
    frame["spend"] = pd.to_numeric(frame["spend"]).clip(lower=0)
    frame["missing_amounts"] = frame["missing_amounts"].astype("int64")
    return frame


def judged_at(session: Session, score_run_id: int) -> datetime | None:
    """When the run's stored outcome was judged; None if it has none."""
    return session.scalar(
        select(ScoreRunOutcome.evaluated_at).where(ScoreRunOutcome.score_run_id == score_run_id)
    )


def refuse_rejudging(score_run_id: int, judged: datetime) -> OutcomeFinal:
    return OutcomeFinal(
        f"score run {score_run_id} was judged at {judged:%Y-%m-%d %H:%M} UTC and judged results "
        f"are final: `propensity evaluate --run-id {score_run_id} --rejudge` judges it again"
    )


def store_outcome(
    session: Session,
    run: RunToEvaluate,
    figures: dict[str, Any],
    deciles: pd.DataFrame,
    rejudge: bool = False,
) -> None:
    """Store the run's outcome and decile rows (`figures`: the outcome's metric columns;
    `deciles`: decile, customers, expected, actual). A stored outcome is final (OutcomeFinal)
    unless `rejudge`: then it is replaced, and its note says it was re-judged and when."""
    run_id = run.score_run_id
    judged = judged_at(session, run_id)
    if judged is not None and not rejudge:
        raise refuse_rejudging(run_id, judged)
    now = utc_now()
    if judged is not None:
        rejudged = (
            f"re-judged at {now:%Y-%m-%d %H:%M} UTC (first judged at {judged:%Y-%m-%d %H:%M})"
        )
        figures = {**figures, "note": "; ".join(filter(None, [figures.get("note"), rejudged]))}
    for table in (ScoreRunOutcomeDecile, ScoreRunOutcome):
        session.execute(delete(table).where(table.score_run_id == run_id))
    session.add(
        ScoreRunOutcome(
            score_run_id=run_id,
            evaluated_at=now,
            as_of=run.as_of,
            model_version_id=run.model_version_id,
            horizon_days=run.horizon_days,
            **figures,
        )
    )
    session.flush()
    # A decile only one of the two cuts has (a run of under ten customers) is NULL in the
    # other's columns, never NaN.
    rows = deciles.astype(object).where(deciles.notna(), None).to_dict("records")
    session.execute(
        insert(ScoreRunOutcomeDecile), [{"score_run_id": run_id, **row} for row in rows]
    )


@dataclass(frozen=True)
class EvaluatedRun:
    """A judged run's stored outcome, the conversions its scores expected, and its model's
    kind and holdout metrics (model_versions.metrics); kind and metrics None where the
    model row is gone."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    n_customers: int
    n_converted: int
    expected: float
    figures: dict[str, float | None]
    kind: str | None
    model_metrics: dict[str, Any] | None


# The judged figures score_run_outcomes holds for a run (and the tables print).
OUTCOME_FIGURE_COLUMNS = (
    "base_rate",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "top_decile_lift",
    "realized_revenue",
    "predicted_revenue",
    "value_gini",
    "value_mae",
    "top_decile_revenue_share",
)


def evaluated_runs(connection: Connection, limit: int) -> list[EvaluatedRun]:
    """The `limit` latest evaluated runs, oldest first."""
    outcome = ScoreRunOutcome
    expected = (
        select(func.sum(ScoreRunOutcomeDecile.expected))
        .where(ScoreRunOutcomeDecile.score_run_id == outcome.score_run_id)
        .scalar_subquery()
    )
    rows = connection.execute(
        select(
            outcome.score_run_id,
            outcome.as_of,
            outcome.model_version_id,
            outcome.n_customers,
            outcome.n_converted,
            expected.label("expected"),
            ModelVersion.kind,
            ModelVersion.metrics,
            *(outcome.__table__.c[name] for name in OUTCOME_FIGURE_COLUMNS),
        )
        .outerjoin(ModelVersion, ModelVersion.id == outcome.model_version_id)
        .order_by(outcome.as_of.desc(), outcome.score_run_id.desc())
        .limit(limit)
    ).all()
    return [
        EvaluatedRun(
            score_run_id=row.score_run_id,
            as_of=row.as_of,
            model_version_id=row.model_version_id,
            n_customers=row.n_customers,
            n_converted=row.n_converted,
            expected=float(row.expected or 0.0),
            figures={name: getattr(row, name) for name in OUTCOME_FIGURE_COLUMNS},
            kind=row.kind,
            model_metrics=row.metrics,
        )
        for row in reversed(rows)
    ]

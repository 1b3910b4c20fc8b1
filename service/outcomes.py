"""Judging published score runs once their horizon has passed, as plain functions: the
score flow's monitoring task and `propensity evaluate` call these.

A run's scores come from the service database and its converted customers from the event
source (the two may be different databases), so the join is made here, on one row per
customer the run scored; each run's outcome is stored in a transaction of its own.
"""

from datetime import datetime

import pandas as pd

from db.engine import transaction
from db.outcomes import (
    RunToEvaluate,
    converted_customers,
    judged_at,
    refuse_rejudging,
    run_scores,
    run_to_evaluate,
    runs_awaiting_outcome,
    store_outcome,
)
from db.source import EventColumns, EventSource, event_time_span, resolve_columns
from llm_model.manifest import ModelManifest
from llm_model.monitoring import PublishedValues, realized_outcome
from service.databases import Databases
from service.results import RunEvaluation


def evaluate_runs(
    databases: Databases,
    source: EventSource,
    score_run_id: int | None = None,
    rejudge: bool = False,
) -> list[RunEvaluation]:
    """Evaluate every matured run awaiting its outcome (or the one run); runs not matured
    yet are reported, never evaluated early. A judged run's outcome is final: judging it
    again is refused (OutcomeFinal) unless `rejudge` asks for it, for the one run."""
    if rejudge and score_run_id is None:
        raise ValueError("re-judging is asked for one run at a time: name it (--run-id N)")
    with transaction(databases.service()) as session:
        if score_run_id is None:
            runs = runs_awaiting_outcome(session)
        else:
            runs = [run_to_evaluate(session, score_run_id)]
            judged = judged_at(session, score_run_id)
            if judged is not None and not rejudge:
                raise refuse_rejudging(score_run_id, judged)
    if not runs:
        return []
    with databases.events().connect() as connection:
        columns = resolve_columns(connection, source)
        span = event_time_span(connection, columns)
    latest_event = None if span is None else span[1]
    return [evaluate_run(databases, columns, run, latest_event, rejudge) for run in runs]


def evaluate_run(
    databases: Databases,
    columns: EventColumns,
    run: RunToEvaluate,
    latest_event: datetime | None,
    rejudge: bool = False,
) -> RunEvaluation:
    if run.matures_at is None:
        return RunEvaluation(run, skipped=f"its model version {run.model_version_id} is gone")
    if latest_event is None or latest_event < run.matures_at:
        return RunEvaluation(run)
    with databases.service().connect() as connection:
        scores = run_scores(connection, run.score_run_id)
    if scores.empty:
        return RunEvaluation(run, skipped="its scores were pruned before it matured")
    target_event = ModelManifest.from_json(run.model_config).sequence.target_event
    with databases.events().connect() as connection:
        converted = converted_customers(
            connection, columns, target_event, run.as_of, run.matures_at
        )
    outcome = realized_outcome(
        scores["customer_id"].isin(converted["customer_id"]).to_numpy(),
        scores["propensity"].to_numpy(),
        scores["decile"].to_numpy(),
        published_values(scores, converted),
    )
    with transaction(databases.service()) as session:
        store_outcome(session, run, outcome.columns(), outcome.deciles, rejudge)
    return RunEvaluation(run, outcome)


def published_values(scores: pd.DataFrame, converted: pd.DataFrame) -> PublishedValues | None:
    """The run's expected values beside each scored customer's revenue in the horizon; None
    for a run published without values, or a source without amounts."""
    if scores["expected_value"].isna().any() or converted["spend"].isna().any():
        return None
    spend = scores["customer_id"].map(converted.set_index("customer_id")["spend"]).fillna(0.0)
    scored = converted["customer_id"].isin(scores["customer_id"])
    return PublishedValues(
        expected_value=scores["expected_value"].to_numpy(dtype=float),
        value_decile=scores["value_decile"].to_numpy(),
        spend=spend.to_numpy(dtype=float),
        missing_amounts=int(converted.loc[scored, "missing_amounts"].sum()),
    )

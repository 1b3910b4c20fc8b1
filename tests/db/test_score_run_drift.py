"""Drift rows of score runs: replaced whole, the latest measured run's read back, and kept
with their run until a rerun replaces it."""

from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import select, text

from db.drift import RunDrift, latest_drift, store_drift
from db.engine import transaction
from db.models import ScoreRunDrift
from db.scores import publish_score_run, stage_scores, start_score_run

T0 = datetime(2026, 1, 1)


def published_run(engine, model_id: int, as_of: datetime, psi: dict[str, float]) -> int:
    """A published run with its drift rows stored in the publishing transaction."""
    with transaction(engine) as session:
        run_id = start_score_run(session, as_of, model_id, None)
    with engine.begin() as connection:
        stage_scores(connection, run_id, pd.DataFrame({"customer_id": ["a"], "propensity": [0.5]}))
    with transaction(engine) as session:
        publish_score_run(session, run_id, keep_succeeded=10)
        store_drift(session, run_id, psi)
    return run_id


def drift_rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(
            select(ScoreRunDrift.score_run_id, ScoreRunDrift.feature, ScoreRunDrift.psi).order_by(
                ScoreRunDrift.score_run_id, ScoreRunDrift.feature
            )
        ).all()


def test_the_latest_measured_run_by_as_of_is_read_back_with_every_feature(engine, gbm_version):
    model_id = gbm_version
    with engine.connect() as connection:
        assert latest_drift(connection) is None
    latest = published_run(engine, model_id, T0 + timedelta(days=2), {"tenure": 0.5, "x": 0.0})
    published_run(engine, model_id, T0 + timedelta(days=1), {"tenure": 0.1})
    published_run(engine, model_id, T0 + timedelta(days=3), {})  # a model without a reference

    with engine.connect() as connection:
        drift = latest_drift(connection)
        max_psi = connection.scalar(
            text("SELECT max_psi FROM score_run_monitoring WHERE score_run_id = :id"),
            {"id": latest},
        )

    assert drift == RunDrift(latest, T0 + timedelta(days=2), model_id, {"tenure": 0.5, "x": 0.0})
    assert max_psi == 0.5


def test_storing_again_replaces_a_runs_rows_and_a_rerun_replaces_the_run(engine, gbm_version):
    model_id = gbm_version
    first = published_run(engine, model_id, T0, {"tenure": 0.5, "recency": 0.25})
    with transaction(engine) as session:
        store_drift(session, first, {"tenure": 0.75})
    assert drift_rows(engine) == [(first, "tenure", 0.75)]

    rerun = published_run(engine, model_id, T0, {"recency": 0.125})

    assert drift_rows(engine) == [(rerun, "recency", 0.125)]

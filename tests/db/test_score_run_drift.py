"""Drift rows of score runs: replaced whole, the latest measured run's read back, and kept
with their run until a rerun replaces it."""

from datetime import datetime, timedelta

from sqlalchemy import select, text

from db.drift import RunDrift, latest_drift, store_drift
from db.engine import transaction
from db.models import ScoreRunDrift

T0 = datetime(2026, 1, 1)


def drift_rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(
            select(ScoreRunDrift.score_run_id, ScoreRunDrift.feature, ScoreRunDrift.psi).order_by(
                ScoreRunDrift.score_run_id, ScoreRunDrift.feature
            )
        ).all()


def test_the_latest_measured_run_by_as_of_is_read_back_with_every_feature(
    engine, gbm_version, published_run
):
    model_id = gbm_version
    with engine.connect() as connection:
        assert latest_drift(connection) is None
    latest = published_run(T0 + timedelta(days=2), {"tenure": 0.5, "x": 0.0})
    published_run(T0 + timedelta(days=1), {"tenure": 0.1})
    published_run(T0 + timedelta(days=3), {})  # a model without a reference

    with engine.connect() as connection:
        drift = latest_drift(connection)
        max_psi = connection.scalar(
            text("SELECT max_psi FROM score_run_monitoring WHERE score_run_id = :id"),
            {"id": latest},
        )

    assert drift == RunDrift(latest, T0 + timedelta(days=2), model_id, {"tenure": 0.5, "x": 0.0})
    assert max_psi == 0.5


def test_storing_again_replaces_a_runs_rows_and_a_rerun_replaces_the_run(engine, published_run):
    first = published_run(T0, {"tenure": 0.5, "recency": 0.25})
    with transaction(engine) as session:
        store_drift(session, first, {"tenure": 0.75})
    assert drift_rows(engine) == [(first, "tenure", 0.75)]

    rerun = published_run(T0, {"recency": 0.125})

    assert drift_rows(engine) == [(rerun, "recency", 0.125)]

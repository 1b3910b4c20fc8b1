"""Real flows under Prefect's test harness on tiny data, on every back-end."""

import pandas as pd
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from db.models import Customer, ModelVersion, ScoreRun
from db.registry import NoChampion
from flows.retrain import retrain
from flows.score import score


def current_scores(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            text("SELECT * FROM current_propensity_scores ORDER BY customer_id"), connection
        )


def count(engine, query) -> int:
    with engine.connect() as connection:
        return connection.scalar(query)


def test_retrain_on_an_empty_database_fails_clearly(service):
    with pytest.raises(ValueError, match="no events in the source"):
        retrain()


def test_retrain_registers_a_model_with_every_contender_on_the_holdout(populated):
    result = retrain()
    assert set(result["table"]) >= {"model", "model_raw", "recency", "rfm_logistic", "rfm_gbm"}
    with Session(populated) as session:
        version = session.scalars(select(ModelVersion)).one()
    assert version.status in {"champion", "rejected"}
    assert version.status == result["status"]
    assert version.status_reason == result["reason"]
    assert 0.0 <= version.metrics["table"]["model"]["roc_auc"] <= 1.0
    assert version.metrics["data"]["n_holdout"] > 0
    assert "Holdout metrics" in result["card"]


def test_score_publishes_one_row_per_active_customer_and_reruns_idempotently(populated):
    retrain(force_promote=True)
    summary = score()
    active = count(populated, select(func.count()).where(Customer.is_active.is_(True)))
    scores = current_scores(populated)
    assert summary["n_scored"] == active == len(scores)
    assert scores["customer_id"].is_unique
    assert sorted(scores["rank"]) == list(range(1, active + 1))
    assert scores["propensity"].between(0, 1).all()
    assert scores["reason_1"].notna().all()
    best = scores.sort_values("rank").iloc[0]
    assert best["propensity"] == scores["propensity"].max()

    again = score()
    rescored = current_scores(populated)
    assert again["score_run_id"] != summary["score_run_id"]
    pd.testing.assert_series_equal(rescored["propensity"], scores["propensity"])
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 1


def test_score_without_a_champion_writes_nothing(populated):
    with pytest.raises(NoChampion, match="no champion model"):
        score()
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 0


def test_corrupt_champion_artifact_is_refused_before_any_write(populated):
    retrain(force_promote=True)
    with populated.begin() as connection:
        connection.execute(update(ModelVersion).values(artifact=b"not a keras file"))
    with pytest.raises(Exception, match="corrupt"):
        score()
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 0

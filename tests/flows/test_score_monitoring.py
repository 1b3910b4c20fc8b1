"""The score flow judges earlier runs once their horizon has passed: real flows on tiny data,
on every back-end."""

from datetime import timedelta

import pandas as pd
import pytest
import sklearn.metrics
from sqlalchemy import func, select, text

from db.engine import transaction
from db.models import CustomerEvent, PropensityScore, ScoreRun, ScoreRunOutcome
from db.outcomes import NotEvaluable, run_to_evaluate
from db.scores import InSampleRun
from flows.score import score
from service.settings import ScoreRequest


def latest_event(engine):
    with engine.connect() as connection:
        return connection.scalar(select(func.max(CustomerEvent.occurred_at)))


def outcomes(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            select(ScoreRunOutcome).order_by(ScoreRunOutcome.score_run_id), connection
        )


def realized_labels(engine, run_id: int, as_of, horizon: timedelta) -> pd.DataFrame:
    """The run's scores beside whether each customer purchased in its horizon, from the rows
    themselves."""
    with engine.connect() as connection:
        scores = pd.read_sql(
            select(PropensityScore.customer_id, PropensityScore.propensity).where(
                PropensityScore.score_run_id == run_id
            ),
            connection,
        )
        events = pd.read_sql(
            select(CustomerEvent.customer_id, CustomerEvent.event_type, CustomerEvent.occurred_at),
            connection,
        )
    window = events["occurred_at"].gt(as_of) & events["occurred_at"].le(as_of + horizon)
    bought = events.loc[window & events["event_type"].eq("purchase"), "customer_id"]
    return scores.assign(converted=scores["customer_id"].isin(set(bought)))


@pytest.mark.usefixtures("early_champion")
def test_the_score_flow_judges_a_matured_run_and_not_one_still_in_its_horizon(populated):
    latest = latest_event(populated)
    current = score()
    assert outcomes(populated).empty

    past = score(request=ScoreRequest(as_of=latest - timedelta(days=40)))

    judged = outcomes(populated)
    assert judged["score_run_id"].tolist() == [past.score_run_id]
    row = judged.iloc[0]
    reference = realized_labels(populated, past.score_run_id, past.as_of, timedelta(days=30))
    assert row["n_customers"] == past.n_scored == len(reference)
    assert row["n_converted"] == reference["converted"].sum() > 0
    assert row["roc_auc"] == pytest.approx(
        sklearn.metrics.roc_auc_score(reference["converted"], reference["propensity"]), abs=1e-6
    )
    assert current.score_run_id not in judged["score_run_id"].tolist()


# A trigger that refuses the evaluation's last write with an error no retry would fix, and
# how to drop it.
FAILING_WRITE = {
    "sqlite": (
        [
            "CREATE TRIGGER refuse BEFORE INSERT ON score_run_outcome_deciles "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        ],
        "DROP TRIGGER refuse",
    ),
    "postgresql": (
        [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON score_run_outcome_deciles "
            "FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
        "DROP TRIGGER refuse ON score_run_outcome_deciles",
    ),
}


@pytest.mark.usefixtures("early_champion")
def test_a_failing_evaluation_keeps_the_published_run_and_the_next_run_retries(populated):
    if populated.dialect.name not in FAILING_WRITE:
        pytest.skip("MariaDB's SIGNAL reads as a transient error, which the task retries")
    create, drop = FAILING_WRITE[populated.dialect.name]
    with populated.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    latest = latest_event(populated)

    past = score(request=ScoreRequest(as_of=latest - timedelta(days=40)))

    assert outcomes(populated).empty
    with populated.connect() as connection:
        status = connection.scalar(select(ScoreRun.status).where(ScoreRun.id == past.score_run_id))
        visible = connection.scalar(text("SELECT COUNT(*) FROM current_propensity_scores"))
    assert (status, visible) == ("succeeded", past.n_scored)

    with populated.begin() as connection:
        connection.execute(text(drop))
    score()
    assert outcomes(populated)["score_run_id"].tolist() == [past.score_run_id]


@pytest.mark.usefixtures("champion")
def test_a_score_before_the_champions_training_cutoff_is_refused_or_never_judged(populated):
    """The champion was trained as of the latest event: its training labels reach into the
    horizon of a run 40 days earlier. Scored anyway, on request, that run is in sample:
    never judged, never in score_run_monitoring."""
    latest = latest_event(populated)
    earlier = latest - timedelta(days=40)
    with pytest.raises(InSampleRun, match=r"before model version \d+'s training cutoff"):
        score(request=ScoreRequest(as_of=earlier))
    with populated.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ScoreRun)) == 0

    past = score(request=ScoreRequest(as_of=earlier, in_sample=True))
    score()

    assert outcomes(populated).empty
    with populated.connect() as connection:
        in_sample = connection.scalar(
            select(ScoreRun.in_sample).where(ScoreRun.id == past.score_run_id)
        )
        monitored = connection.scalars(text("SELECT score_run_id FROM score_run_monitoring"))
        assert in_sample is True or in_sample == 1
        assert past.score_run_id not in set(monitored)
    with pytest.raises(NotEvaluable, match="is in sample"), transaction(populated) as session:
        run_to_evaluate(session, past.score_run_id)

"""Real flows under Prefect's test harness on tiny data, on every back-end."""

import base64
import gc
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect.artifacts import Artifact
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from db.engine import session_factory, transaction
from db.event_import import event_keys, store_events
from db.locks import LockHeld, acquire_lock
from db.models import Customer, CustomerEvent, ModelVersion, ScoreRun
from db.registry import ArtifactError, NoChampion, sign_unsigned
from flows.pipeline import retrain_and_score
from flows.retrain import retrain
from flows.score import score, warm_up_model
from llm_model.reasons import REASON_COLUMNS, WEIGHT_COLUMNS
from service.events import source_columns
from service.partitions import (
    ScoreJob,
    ScoreRunPlan,
    cached_model,
    collections_skip_what_is_alive,
    partition_features,
    unload_models,
)
from service.pseudonyms import pseudonym
from service.registry import metrics_of
from service.rendering import score_headline
from service.settings import RetrainRequest, ScoreRequest, current_settings


def current_scores(engine) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(
            text("SELECT * FROM current_propensity_scores ORDER BY customer_id"), connection
        )


def count(engine, query) -> int:
    with engine.connect() as connection:
        return connection.scalar(query)


def first_active_customer(session: Session) -> str:
    return session.scalar(
        select(Customer.customer_id)
        .where(Customer.is_active.is_(True))
        .order_by(Customer.customer_id)
        .limit(1)
    )


def test_retrain_on_an_empty_database_fails_clearly(service):
    with pytest.raises(ValueError, match="no events in the source"):
        retrain()


def test_the_first_retrain_registers_the_best_contender_as_champion(populated, configure):
    """RFM-dominated data and a one-epoch network: a model on the static features wins."""
    configure(hybrid=True)
    result = retrain()
    assert set(result.table) == {
        *("gru", "gru_raw", "recency", "logistic", "gbm", "gru_hybrid", "gru_hybrid_raw")
    }
    contenders = ("gru", "logistic", "gbm", "gru_hybrid")
    best = max(contenders, key=lambda k: (result.table[k]["roc_auc"], -result.table[k]["log_loss"]))
    assert best == "logistic"
    with Session(populated) as session:
        version = session.scalars(select(ModelVersion)).one()
    assert (version.status, version.kind, result.kind) == ("champion", best, best)
    assert version.status_reason == result.reason
    assert result.reason.startswith(f"first champion: {best} has the best holdout roc_auc")
    metrics = metrics_of(version)
    assert (metrics.winner, metrics.contenders) == (best, contenders)
    assert metrics.data.n_holdout > 0
    assert "Holdout metrics" in result.card
    charts = [Path(path) for path in metrics.charts]
    assert [chart.name for chart in charts] == [
        "gains.png",
        "calibration.png",
        "score_histogram.png",
    ]
    for chart in charts:
        assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert chart.stat().st_size > 5_000
        assert chart.name in result.card
        # Inside the card, for the Prefect UI on any machine.
        assert base64.b64encode(chart.read_bytes()).decode() in result.card
    assert Artifact.get("model-card").data == result.card


@pytest.mark.usefixtures("champion")
def test_score_publishes_one_row_per_active_customer_and_reruns_idempotently(populated):
    summary = score()
    active = count(populated, select(func.count()).where(Customer.is_active.is_(True)))
    scores = current_scores(populated)
    assert summary.n_scored == active == len(scores)
    assert scores["customer_id"].is_unique
    assert sorted(scores["rank"]) == list(range(1, active + 1))
    assert scores["propensity"].between(0, 1).all()
    assert scores["reason_1"].notna().all()
    best = scores.sort_values("rank").iloc[0]
    assert best["propensity"] == scores["propensity"].max()

    again = score()
    rescored = current_scores(populated)
    assert again.score_run_id != summary.score_run_id
    # The rerun replaced the first run (same as_of and model), and says so.
    assert again.replaced == (summary.score_run_id,)
    assert f"replaces score run {summary.score_run_id} of the same as_of" in score_headline(again)
    pd.testing.assert_series_equal(rescored["propensity"], scores["propensity"])
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 1


def test_score_without_a_champion_writes_nothing(populated):
    with pytest.raises(NoChampion, match="no champion model"):
        score()
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 0


@pytest.mark.usefixtures("champion")
def test_corrupt_champion_artifact_is_refused_before_any_write(populated):
    with populated.begin() as connection:
        connection.execute(update(ModelVersion).values(artifact=b"not a keras file"))
    with pytest.raises(Exception, match="corrupt"):
        score()
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 0


def test_a_second_retrain_while_one_runs_exits_clearly(populated):
    sessions = session_factory(populated)
    acquire_lock(sessions, "retrain", "flow run elsewhere", timedelta(hours=1))
    with pytest.raises(LockHeld, match="another retrain is running"):
        retrain()
    assert count(populated, select(func.count()).select_from(ModelVersion)) == 0


def test_parent_flow_scores_with_the_champion_even_when_retrain_fails(populated, configure):
    first = retrain()
    configure(horizon_days=400)  # longer than the data: retrain fails
    with pytest.raises(RuntimeError, match=r"retrain failed .* existing champion in score run"):
        retrain_and_score()
    with Session(populated) as session:
        run = session.scalars(select(ScoreRun)).one()
    assert (run.status, run.model_version_id) == ("succeeded", first.version_id)
    assert len(current_scores(populated)) == run.n_scored > 0


@pytest.mark.usefixtures("champion")
def test_parent_flow_retrains_then_scores_with_whoever_is_champion(populated):
    result = retrain_and_score()
    with Session(populated) as session:
        champion = session.scalars(
            select(ModelVersion).where(ModelVersion.status == "champion")
        ).one()
    # The champion is this retrain's recurrent contender, so the retrain's winner is at least
    # as good on the same holdout: it is promoted and scores.
    assert (result.retrain.status, champion.id) == ("champion", result.retrain.version_id)
    assert result.score.model_version_id == champion.id


@pytest.mark.usefixtures("champion")
def test_a_failing_partition_write_fails_the_run_and_keeps_the_previous_scores(
    populated, failing_staging
):
    first = score()
    before = current_scores(populated)
    failing_staging(True)
    with pytest.raises(Exception, match="disk gone"):
        score()
    with Session(populated) as session:
        failed = session.scalars(select(ScoreRun).where(ScoreRun.status == "failed")).one()
    assert "disk gone" in failed.error
    pd.testing.assert_frame_equal(current_scores(populated), before)

    failing_staging(False)
    rerun = score()
    assert rerun.score_run_id > first.score_run_id
    assert len(current_scores(populated)) == len(before)


@pytest.mark.usefixtures("champion")
def test_a_second_score_run_while_one_runs_exits_clearly(populated):
    acquire_lock(session_factory(populated), "score", "flow run elsewhere", timedelta(hours=1))
    with pytest.raises(LockHeld, match="another score is running"):
        score()
    assert count(populated, select(func.count()).select_from(ScoreRun)) == 0


@pytest.mark.usefixtures("champion")
def test_customers_without_history_and_unseen_event_types_are_scored(populated):
    with Session(populated) as session:
        latest = session.scalar(select(func.max(CustomerEvent.occurred_at)))
        known = first_active_customer(session)
        session.add(Customer(customer_id="Z-new", is_active=True, created_at=latest))
        session.add(
            CustomerEvent(
                event_id="unseen-1",
                customer_id=known,
                event_type="chatbot_conversation",
                occurred_at=latest,
            )
        )
        session.commit()
    score()
    scores = current_scores(populated).set_index("customer_id")
    assert 0.0 < scores.loc["Z-new", "propensity"] < 1.0
    assert scores.loc["Z-new", ["reason_1", "reason_2", "reason_3"]].notna().all()
    assert 0.0 < scores.loc[known, "propensity"] < 1.0


# The rule's SQL is checked on every back-end in tests/db; one back-end keeps this short.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("champion")
def test_recent_events_rule_scores_exactly_the_customers_with_a_recent_event(populated, configure):
    """The partitions read every customer's whole history, so their own events answer the
    rule whatever its window, beyond the lookback too; the scored set is what SQL says it
    is."""
    configure(active_rule="recent_events")
    latest = count(populated, select(func.max(CustomerEvent.occurred_at)))
    beyond_lookback = current_settings().lookback_days + 100
    scored = {}
    for within_days in (30, beyond_lookback):
        configure(active_within_days=within_days)
        score()
        with populated.connect() as connection:
            recent = connection.scalars(
                select(CustomerEvent.customer_id)
                .where(CustomerEvent.occurred_at > latest - timedelta(days=within_days))
                .distinct()
            ).all()
        scored[within_days] = sorted(current_scores(populated)["customer_id"])
        assert scored[within_days] == sorted(recent)
    assert len(scored[30]) < len(scored[beyond_lookback])


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.usefixtures("champion")
def test_a_partition_reads_the_whole_history_for_the_static_features(populated):
    """An event older than the lookback counts in a scored customer's static features (here
    its tenure), as it does in the training snapshots."""
    with Session(populated) as session, session.begin():
        version_id = session.scalar(select(ModelVersion.id))
        as_of = session.scalar(select(func.max(CustomerEvent.occurred_at)))
        customer = first_active_customer(session)
        old = as_of - timedelta(days=current_settings().lookback_days + 100)
        session.add(
            CustomerEvent(
                event_id="older-than-the-lookback",
                customer_id=customer,
                event_type="visit",
                occurred_at=old,
                amount=None,
            )
        )
    job = ScoreJob.from_settings(current_settings())
    plan = ScoreRunPlan(0, as_of, version_id, source_columns(job.databases, job.source), [])
    model, _ = cached_model(job.databases, version_id)

    features = partition_features(job, plan, model, (customer, None))

    row = features.customer_ids.tolist().index(customer)
    tenure_days = np.expm1(features.static[row, features.static_names.index("tenure")])
    assert tenure_days == pytest.approx((as_of - old) / timedelta(days=1), rel=1e-5)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("reason_codes", [True, False])
@pytest.mark.usefixtures("champion")
def test_the_warm_up_traces_the_function_that_then_scores_every_partition(
    populated, configure, reason_codes
):
    """Tracing costs up to a second of CPU; the flow's warm-up task does it while the first
    partition reads its events, which only helps if the partitions reuse that trace."""
    configure(reason_codes=reason_codes)
    with Session(populated) as session:
        version_id = session.scalar(select(ModelVersion.id))
        as_of = session.scalar(select(func.max(CustomerEvent.occurred_at)))
    job = ScoreJob.from_settings(current_settings())
    plan = ScoreRunPlan(0, as_of, version_id, source_columns(job.databases, job.source), [])
    unload_models()
    model, _ = cached_model(job.databases, version_id)
    warm_up_model.fn(job, plan)
    network = model.propensity_model  # the champion carries its value model
    traced = network.attribution if reason_codes else network.probability
    assert traced.experimental_get_tracing_count() == 1
    summary = score()
    n, size = summary.n_scored, current_settings().partition_size
    assert n > size and n % size  # full partitions and a smaller last one
    assert traced.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.usefixtures("champion")
def test_collections_skip_the_loaded_model_while_partitions_run_and_only_then(populated):
    """A full collection walks every tracked object while holding the GIL; TensorFlow, Keras
    and the model make that ~0.4 s, during which no partition thread runs. Afterwards a
    model that dies (evicted from the cache) must be collectable again."""
    with Session(populated) as session:
        version_id = session.scalar(select(ModelVersion.id))
    model, _ = cached_model(current_settings().databases(), version_id)
    network = model.propensity_model.network  # the champion carries its value model

    def walked() -> set[int]:
        return {id(tracked) for tracked in gc.get_objects()}

    with collections_skip_what_is_alive():
        assert id(network) not in walked()
    assert id(network) in walked()


def test_a_challenger_worse_than_the_champion_is_rejected_and_the_champion_stays(
    populated, make_champion
):
    """The champion (logistic regression on three snapshots) beats everything a retrain on
    two snapshots of the same data trains, on the same holdout, by more than the tolerance."""
    champion_id = make_champion("logistic")
    result = retrain(request=RetrainRequest(n_snapshots=2))
    auc = {name: row["roc_auc"] for name, row in result.table.items()}
    best = max(auc[k] for k in ("gru", "logistic", "gbm"))
    assert auc["champion"] - best > current_settings().promotion_tolerance
    assert result.status == "rejected"
    assert "worse than the champion's" in result.reason
    with Session(populated) as session:
        champions = session.scalars(
            select(ModelVersion.id).where(ModelVersion.status == "champion")
        ).all()
    assert champions == [champion_id]


@pytest.mark.usefixtures("gbm_champion")
def test_a_gradient_boosting_champion_scores_with_its_reasons(populated):
    summary = score()
    scores = current_scores(populated)
    active = count(populated, select(func.count()).where(Customer.is_active.is_(True)))
    assert summary.n_scored == active == len(scores)
    with Session(populated) as session:
        kind = session.scalar(
            select(ModelVersion.kind).where(ModelVersion.id == summary.model_version_id)
        )
    assert kind == "gbm"
    assert scores["propensity"].between(0, 1).all()
    # Each reason reads the customer's own figure of a static feature and says which way it
    # pushes; its stored weight has that sign, and the weights fall in absolute value.
    reasons = scores[REASON_COLUMNS].stack().dropna()
    assert reasons.str.fullmatch(r"[^,]+ \((raises|lowers)\)").all()
    assert not reasons.str.contains("among recent events").any()
    weights = scores[WEIGHT_COLUMNS].to_numpy()
    raises = scores[REASON_COLUMNS].apply(lambda column: column.str.endswith("(raises)"))
    given = scores[REASON_COLUMNS].notna().to_numpy()
    assert given[:, 0].all()
    np.testing.assert_array_equal(weights[given] > 0, raises.to_numpy()[given])
    assert (np.diff(np.abs(np.nan_to_num(weights)), axis=1) <= 0).all()


@pytest.mark.usefixtures("gbm_champion")
def test_the_score_artifact_names_customers_by_pseudonym_unless_told_otherwise(
    populated, configure
):
    key = "a-pseudonym-key-of-32-characters"
    configure(pseudonym_key=key)
    summary = score()
    markdown = Artifact.get("score-run").data
    top = [t.customer_id for t in summary.top]
    assert len(top) == 10
    assert "| rank | pseudonym | propensity | expected value | reasons |" in markdown
    for customer in top:
        assert f"| {pseudonym(customer, key.encode())} |" in markdown
        assert customer not in markdown

    configure(name_customers_in_artifacts=True)
    score()
    named = Artifact.get("score-run").data
    assert all(f"| {customer} |" in named for customer in top)


def test_under_a_signing_key_an_unsigned_champion_is_refused_until_signed(
    populated, configure, make_champion
):
    champion_id = make_champion("gbm")  # registered before the key was set
    key = "a-signing-key-of-32-characters!!"
    configure(signing_key=key)
    with pytest.raises(ArtifactError, match=rf"^model version {champion_id} is not signed"):
        score()
    with populated.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ScoreRun)) == 0

    with transaction(populated) as session:
        assert sign_unsigned(session, key.encode()) == [champion_id]
    assert score().model_version_id == champion_id


def order_signal_events(n_customers: int, seed: int, days: int = 240) -> pd.DataFrame:
    """Every 30 days each customer meets events a and b an hour apart, in random order; after
    a then b they buy 20 to 28 days later, after b then a they do not. Counts, recency and
    spend are alike either way: only the order of the last two events tells."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    rows = []
    for number in range(n_customers):
        customer = f"K{number:05d}"
        for day in np.arange(rng.uniform(0, 30), days, 30):
            order = ("a", "b") if rng.random() < 0.5 else ("b", "a")
            at = start + pd.Timedelta(days=day)
            rows += [(customer, order[0], at), (customer, order[1], at + pd.Timedelta(hours=1))]
            if order == ("a", "b") and rng.random() < 0.9:
                rows.append((customer, "purchase", at + pd.Timedelta(days=rng.uniform(20, 28))))
    events = pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at"])
    events = events.assign(amount=np.nan).astype({"occurred_at": "datetime64[us]"})
    return events[events["occurred_at"] <= start + pd.Timedelta(days=days)]


# Training is most of the time: one back-end (the champion rule is the same on every one).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_recurrent_model_wins_where_only_the_order_of_events_tells(service, configure):
    configure(epochs=5)
    events = order_signal_events(600, seed=1)
    with transaction(service) as session:
        store_events(session, events.assign(event_id=event_keys(events)))
    result = retrain()
    auc = {name: row["roc_auc"] for name, row in result.table.items()}
    assert result.kind in {"gru", "gru_hybrid"}
    assert result.status == "champion"
    assert auc[result.kind] > max(auc["logistic"], auc["gbm"]) + 0.2
    assert max(auc["logistic"], auc["gbm"]) < 0.6


@pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
@pytest.mark.usefixtures("early_champion")
def test_a_date_alone_scores_with_every_event_of_that_day(populated, add_events):
    """`--as-of 2026-10-30` is the end of the 30th: a customer who first came at 22:00 that
    day is scored, and the run is as of the day's last microsecond."""
    day = (latest_event_time(populated) - timedelta(days=1)).date()
    late = pd.Timestamp(day) + pd.Timedelta(hours=22)
    add_events(populated, [("came-late", "visit", late.to_pydatetime())])

    summary = score(request=ScoreRequest(as_of=day.isoformat()))

    assert summary.as_of == pd.Timestamp(day) + pd.Timedelta(days=1, microseconds=-1)
    assert "came-late" in set(current_scores(populated)["customer_id"])
    with Session(populated) as session:
        assert session.scalar(select(ScoreRun.as_of)) == summary.as_of


def latest_event_time(engine):
    return count(engine, select(func.max(CustomerEvent.occurred_at)))

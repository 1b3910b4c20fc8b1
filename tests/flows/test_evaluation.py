"""Score runs judged after their horizon, on every database: hand-built runs and events,
the stored figures against scikit-learn and pandas on the same scores and outcomes."""

import re
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics
from sqlalchemy import delete, func, select, text

from db.engine import make_engine
from db.models import (
    ModelVersion,
    PropensityScore,
    ScoreRun,
    ScoreRunOutcome,
    ScoreRunOutcomeDecile,
)
from db.outcomes import NotEvaluable, OutcomeFinal
from db.source import EventSource
from llm_model.metrics import value_gini
from service.databases import Databases
from service.outcomes import evaluate_runs
from service.rendering import evaluation_line

AS_OF = datetime(2026, 6, 1)
MATURES_AT = AS_OF + timedelta(days=30)
OWN_EVENTS = EventSource()


def databases(engine) -> Databases:
    url = engine.url.render_as_string(hide_password=False)
    return Databases(url, url)


def propensities(n: int, seed: int = 11) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"c{i:02d}": float(p) for i, p in enumerate(rng.uniform(0.02, 0.98, n))}


def events_judging(scores: dict[str, float], seed: int = 12) -> list[tuple[str, str, datetime]]:
    """Purchases in the horizon for about a score's share of the customers (one exactly at
    its end), and for the others events that must not count: a purchase at as_of, one just
    after the horizon, a visit inside it; plus a purchase of a customer the run never scored."""
    rng = np.random.default_rng(seed)
    events = [("zz", "purchase", AS_OF + timedelta(days=3))]
    for i, (customer, p) in enumerate(scores.items()):
        events.append((customer, "visit", AS_OF - timedelta(days=20)))
        if rng.random() < p:
            when = MATURES_AT if i == 0 else AS_OF + timedelta(minutes=int(rng.integers(1, 43200)))
            events.append((customer, "purchase", when))
        else:
            events += [
                (customer, "purchase", AS_OF),
                (customer, "purchase", MATURES_AT + timedelta(seconds=1)),
                (customer, "visit", AS_OF + timedelta(days=5)),
            ]
    return events


def converted_reference(scores: dict[str, float], events) -> np.ndarray:
    bought = {c for c, kind, at in events if kind == "purchase" and AS_OF < at <= MATURES_AT}
    return np.array([customer in bought for customer in scores], dtype=int)


def deciles_reference(scores: dict[str, float], converted: np.ndarray) -> pd.DataFrame:
    """NTILE(10) over propensity descending, then customer id: the run's own deciles."""
    frame = pd.DataFrame({"customer_id": list(scores), "p": list(scores.values()), "y": converted})
    frame = frame.sort_values(["p", "customer_id"], ascending=[False, True])
    frame["decile"] = np.concatenate(
        [np.full(len(part), d) for d, part in enumerate(np.array_split(frame.index, 10), 1)]
    )
    return (
        frame.groupby("decile")
        .agg(customers=("y", "size"), expected=("p", "sum"), actual=("y", "sum"))
        .reset_index()
    )


def stored_outcome(engine, run_id: int) -> tuple[dict | None, pd.DataFrame]:
    with engine.connect() as connection:
        outcome = connection.execute(
            select(ScoreRunOutcome).where(ScoreRunOutcome.score_run_id == run_id)
        ).one_or_none()
        deciles = pd.read_sql(
            select(ScoreRunOutcomeDecile)
            .where(ScoreRunOutcomeDecile.score_run_id == run_id)
            .order_by(ScoreRunOutcomeDecile.decile),
            connection,
        )
    return (None if outcome is None else outcome._asdict()), deciles


def outcome_count(engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return tuple(
            connection.scalar(select(func.count()).select_from(table))
            for table in (ScoreRunOutcome, ScoreRunOutcomeDecile)
        )


def test_a_matured_run_is_judged_as_scikit_learn_and_pandas_judge_it(engine, hand_scored_run):
    scores = propensities(60)
    events = events_judging(scores)
    run_id = hand_scored_run(engine, AS_OF, scores, events)

    [evaluation] = evaluate_runs(databases(engine), OWN_EVENTS)

    y, p = converted_reference(scores, events), np.array(list(scores.values()))
    assert 10 < y.sum() < 50
    outcome, deciles = stored_outcome(engine, run_id)
    assert evaluation.outcome.roc_auc == outcome["roc_auc"]
    assert outcome["roc_auc"] == pytest.approx(sklearn.metrics.roc_auc_score(y, p), abs=1e-6)
    assert outcome["pr_auc"] == pytest.approx(
        sklearn.metrics.average_precision_score(y, p), abs=1e-6
    )
    assert outcome["log_loss"] == pytest.approx(sklearn.metrics.log_loss(y, p), abs=1e-6)
    assert outcome["brier"] == pytest.approx(sklearn.metrics.brier_score_loss(y, p), abs=1e-6)
    bins = np.minimum((p * 10).astype(int), 9)
    gaps = [abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).sum() for b in set(bins)]
    assert outcome["ece"] == pytest.approx(sum(gaps) / len(p), abs=1e-6)
    assert (outcome["n_customers"], outcome["n_converted"]) == (60, y.sum())
    assert outcome["base_rate"] == pytest.approx(y.mean())
    assert (outcome["as_of"], outcome["horizon_days"], outcome["note"]) == (AS_OF, 30, None)

    reference = deciles_reference(scores, y)
    pd.testing.assert_frame_equal(
        deciles[["decile", "customers", "expected", "actual"]],
        reference,
        check_dtype=False,
    )
    top = reference.iloc[0]
    assert outcome["top_decile_lift"] == pytest.approx(top["actual"] / top["customers"] / y.mean())


def test_expected_values_are_judged_on_the_revenue_that_came_in(engine, hand_scored_run):
    rng = np.random.default_rng(21)
    scores = propensities(40)
    values = {customer: float(rng.integers(0, 200)) / 4 for customer in scores}
    inside = AS_OF + timedelta(days=2)
    events = [(c, "visit", AS_OF - timedelta(days=9)) for c in scores]
    spenders = list(scores)[:20]
    events += [(c, "purchase", inside, float(rng.integers(1, 400)) / 8) for c in spenders]
    events += [
        ("c20", "purchase", inside, 10.0),  # refunded in full and more: 0 spend
        ("c20", "purchase", inside + timedelta(hours=1), -15.0),
        ("c21", "purchase", inside),  # no amount: counts 0, and is said
        ("c22", "purchase", MATURES_AT + timedelta(seconds=1), 99.0),  # after the horizon
        ("c23", "purchase", AS_OF, 99.0),  # at as_of: before the horizon
    ]
    run_id = hand_scored_run(engine, AS_OF, scores, events, values)

    [evaluation] = evaluate_runs(databases(engine), OWN_EVENTS)

    frame = pd.DataFrame({"customer_id": list(scores), "expected": list(values.values())})
    bought = {c: amount for c, _, _, amount in events[len(scores) : len(scores) + 20]}
    frame["spend"] = frame["customer_id"].map(bought).fillna(0.0)
    frame = frame.sort_values(["expected", "customer_id"], ascending=[False, True])
    frame["value_decile"] = np.repeat(np.arange(1, 11), 4)
    outcome, deciles = stored_outcome(engine, run_id)
    assert outcome["realized_revenue"] == pytest.approx(frame["spend"].sum())
    assert outcome["predicted_revenue"] == pytest.approx(frame["expected"].sum())
    assert outcome["value_mae"] == pytest.approx((frame["expected"] - frame["spend"]).abs().mean())
    top = frame.loc[frame["value_decile"] == 1, "spend"].sum()
    assert outcome["top_decile_revenue_share"] == pytest.approx(top / frame["spend"].sum())
    assert outcome["value_gini"] == pytest.approx(value_gini(frame["spend"], frame["expected"]))
    assert outcome["note"] == "1 target event(s) in the horizon had no amount: counted as 0 spend"
    by_decile = frame.groupby("value_decile").agg(
        expected_revenue=("expected", "sum"), actual_revenue=("spend", "sum")
    )
    np.testing.assert_allclose(deciles["expected_revenue"], by_decile["expected_revenue"])
    np.testing.assert_allclose(deciles["actual_revenue"], by_decile["actual_revenue"])
    assert deciles["value_customers"].tolist() == [4] * 10
    line = evaluation_line(evaluation)
    assert line.endswith(
        f"; revenue {frame['spend'].sum():,.0f} against {frame['expected'].sum():,.0f} "
        f"expected, value Gini {outcome['value_gini']:.4f}"
    )


def test_a_source_in_another_database_with_its_own_column_names(engine, hand_scored_run, tmp_path):
    scores = propensities(30)
    events = events_judging(scores)
    run_id = hand_scored_run(engine, AS_OF, scores, [])
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    frame = pd.DataFrame(events, columns=["user_ref", "action", "ts"])
    with make_engine(warehouse_url).begin() as connection:
        frame.to_sql("web_events", connection, index=False)
    source = EventSource("web_events", None, "user_ref", "action", "ts", None)

    url = engine.url.render_as_string(hide_password=False)
    evaluate_runs(Databases(url, warehouse_url), source)

    outcome, _ = stored_outcome(engine, run_id)
    y = converted_reference(scores, events)
    assert outcome["n_converted"] == y.sum()
    assert outcome["roc_auc"] == pytest.approx(
        sklearn.metrics.roc_auc_score(y, list(scores.values())), abs=1e-6
    )


def test_a_purchase_at_the_horizons_end_converts_and_one_a_microsecond_later_does_not(
    engine, hand_scored_run
):
    """The horizon is (as_of, as_of + horizon], as training labels it: its last instant
    belongs to it, the next microsecond (kept by every back-end's timestamps) does not, nor
    does a purchase at as_of itself. One customer per decile, so each decile's actual count
    is one customer's outcome."""
    purchases = {
        "at the end": MATURES_AT,
        "a microsecond later": MATURES_AT + timedelta(microseconds=1),
        "inside": AS_OF + timedelta(days=1),
        "at as_of": AS_OF,
    }
    quiet = [f"visitor {i}" for i in range(6)]
    customers = [*purchases, *quiet]
    scores = {customer: 0.9 - 0.08 * rank for rank, customer in enumerate(customers)}
    events = [(c, "purchase", at) for c, at in purchases.items()]
    events += [(c, "visit", AS_OF + timedelta(days=2)) for c in quiet]
    run_id = hand_scored_run(engine, AS_OF, scores, events)

    evaluate_runs(databases(engine), OWN_EVENTS)

    outcome, deciles = stored_outcome(engine, run_id)
    assert (outcome["n_customers"], outcome["n_converted"]) == (10, 2)
    by_customer = dict(zip(customers, deciles["actual"], strict=True))
    assert by_customer == {
        "at the end": 1,
        "a microsecond later": 0,
        "inside": 1,
        "at as_of": 0,
        **dict.fromkeys(quiet, 0),
    }


def test_a_judged_run_is_final_unless_rejudged_and_then_says_so(engine, hand_scored_run):
    scores = propensities(25)
    run_id = hand_scored_run(engine, AS_OF, scores, events_judging(scores))
    [first] = evaluate_runs(databases(engine), OWN_EVENTS)
    assert evaluate_runs(databases(engine), OWN_EVENTS) == []
    stored, _ = stored_outcome(engine, run_id)

    with pytest.raises(OutcomeFinal, match=rf"score run {run_id} was judged at .*--rejudge"):
        evaluate_runs(databases(engine), OWN_EVENTS, run_id)
    with pytest.raises(ValueError, match="one run at a time"):
        evaluate_runs(databases(engine), OWN_EVENTS, rejudge=True)
    assert stored_outcome(engine, run_id)[0] == stored

    [again] = evaluate_runs(databases(engine), OWN_EVENTS, run_id, rejudge=True)

    assert outcome_count(engine) == (1, 10)
    figures = {k: v for k, v in again.outcome.columns().items() if k != "note"}
    assert figures == {k: v for k, v in first.outcome.columns().items() if k != "note"}
    note = stored_outcome(engine, run_id)[0]["note"]
    assert re.search(r"re-judged at .* \(first judged at .*\)", note)


def test_no_conversion_in_the_horizon_stores_null_ranking_metrics_with_the_reason(
    engine, hand_scored_run
):
    scores = propensities(20)
    events = [(c, "visit", MATURES_AT + timedelta(days=1)) for c in scores]
    run_id = hand_scored_run(engine, AS_OF, scores, events)

    evaluate_runs(databases(engine), OWN_EVENTS)

    outcome, deciles = stored_outcome(engine, run_id)
    assert (outcome["roc_auc"], outcome["pr_auc"], outcome["top_decile_lift"]) == (None,) * 3
    assert outcome["note"].startswith("no customer converted in the horizon")
    p = np.array(list(scores.values()))
    assert outcome["n_converted"] == 0
    assert outcome["log_loss"] == pytest.approx(
        sklearn.metrics.log_loss(np.zeros(20), p, labels=[0, 1])
    )
    assert outcome["brier"] == pytest.approx(np.mean(p**2))
    assert deciles["actual"].sum() == 0 and deciles["customers"].sum() == 20


def test_a_run_is_judged_only_once_the_source_reaches_its_horizon(
    engine, hand_scored_run, add_events
):
    scores = propensities(20)
    events = [("c00", "purchase", AS_OF + timedelta(days=2))]
    # The horizon's last second is not yet its end.
    events.append(("c01", "visit", MATURES_AT - timedelta(seconds=1)))
    run_id = hand_scored_run(engine, AS_OF, scores, events)

    [early] = evaluate_runs(databases(engine), OWN_EVENTS)
    [asked] = evaluate_runs(databases(engine), OWN_EVENTS, run_id)

    for evaluation in (early, asked):
        assert (evaluation.matured, evaluation.outcome) == (False, None)
        assert evaluation_line(evaluation).endswith("not matured until 2026-07-01 00:00")
    assert outcome_count(engine) == (0, 0)

    add_events(engine, [("c02", "visit", MATURES_AT)])
    [matured] = evaluate_runs(databases(engine), OWN_EVENTS)
    assert (matured.run.score_run_id, matured.outcome.n_converted) == (run_id, 1)
    assert outcome_count(engine) == (1, 10)


def test_a_run_whose_scores_are_gone_is_reported_and_skipped(engine, hand_scored_run):
    scores = propensities(20)
    run_id = hand_scored_run(engine, AS_OF, scores, events_judging(scores))
    with engine.begin() as connection:
        connection.execute(delete(PropensityScore).where(PropensityScore.score_run_id == run_id))

    [evaluation] = evaluate_runs(databases(engine), OWN_EVENTS)

    assert evaluation.skipped == "its scores were pruned before it matured"
    assert evaluation_line(evaluation).endswith("skipped: its scores were pruned before it matured")
    assert outcome_count(engine) == (0, 0)


FOREIGN_KEYS_OFF = {
    "sqlite": "PRAGMA foreign_keys = OFF",
    "postgresql": "SET session_replication_role = replica",
    "mysql": "SET FOREIGN_KEY_CHECKS = 0",
}


def test_a_run_whose_model_row_is_gone_is_reported_and_skipped(engine, hand_scored_run):
    scores = propensities(20)
    run_id = hand_scored_run(engine, AS_OF, scores, events_judging(scores))
    with engine.connect() as connection:
        connection.execute(text(FOREIGN_KEYS_OFF[engine.dialect.name]))
        connection.execute(delete(ModelVersion))
        connection.commit()

    [evaluation] = evaluate_runs(databases(engine), OWN_EVENTS)

    assert evaluation.run.score_run_id == run_id
    assert evaluation.skipped == f"its model version {evaluation.run.model_version_id} is gone"
    assert outcome_count(engine) == (0, 0)


def test_only_an_existing_succeeded_run_can_be_asked_for(engine, hand_scored_run):
    run_id = hand_scored_run(engine, AS_OF, propensities(12), [])
    with engine.begin() as connection:
        connection.execute(ScoreRun.__table__.update().values(status="failed"))

    with pytest.raises(NotEvaluable, match=f"score run {run_id} is failed: only succeeded"):
        evaluate_runs(databases(engine), OWN_EVENTS, run_id)
    with pytest.raises(NotEvaluable, match="score run 999 does not exist"):
        evaluate_runs(databases(engine), OWN_EVENTS, 999)
    assert evaluate_runs(databases(engine), OWN_EVENTS) == []

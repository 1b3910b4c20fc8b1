"""The recurrent model: determinism, the .keras round trip, padding, reasons, promotion."""

import random
import threading

import numpy as np
import pandas as pd
import pytest

from llm_model.attribution import N_REASONS, static_label, sum_by_token
from llm_model.model import ModelConfig, TrainedModel, model_to_bytes
from llm_model.promotion import decide_promotion
from llm_model.sequences import SequenceConfig, build_training_set
from llm_model.synthetic import generate
from llm_model.training import Evaluation, fit_model, resolve_as_of, train_and_evaluate

TINY = ModelConfig(units=4, embedding_dim=4, dense_units=4, epochs=1, batch_size=128)
SEQUENCE = SequenceConfig(max_len=12)


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return generate(300, seed=11).events


@pytest.fixture(scope="module")
def training(events):
    return build_training_set(events, events["occurred_at"].max(), SEQUENCE, n_snapshots=3)


@pytest.fixture(scope="module")
def trained(training) -> TrainedModel:
    model, _ = fit_model(training, TINY, SEQUENCE, verbose=0)
    return model


def test_same_data_and_seed_give_the_same_predictions(training, trained):
    # Background threads (Prefect's, in the flows) draw from Python's global `random` too.
    stop = threading.Event()

    def draw_until_stopped() -> None:
        while not stop.wait(0.0005):
            random.random()

    other_thread = threading.Thread(target=draw_until_stopped)
    other_thread.start()
    try:
        again, _ = fit_model(training, TINY, SEQUENCE, verbose=0)
    finally:
        stop.set()
        other_thread.join()
    features = training.holdout.features
    np.testing.assert_array_equal(trained.raw_scores(features), again.raw_scores(features))


def test_keras_artifact_round_trip_predicts_identically(training, trained):
    loaded = TrainedModel.from_artifact(model_to_bytes(trained.network), trained.sidecar())
    features = training.holdout.features
    np.testing.assert_array_equal(loaded.propensity(features), trained.propensity(features))
    assert loaded.vocab == trained.vocab
    assert loaded.sequence_config == trained.sequence_config


def test_a_loaded_model_scores_and_explains_as_the_trained_one(training, trained):
    """Loading switches the GRU to per-gate projections for speed; the numbers must not move."""
    loaded = TrainedModel.from_artifact(model_to_bytes(trained.network), trained.sidecar())
    gru_cells = [m.network.get_layer("head").get_layer("gru_last").cell for m in (loaded, trained)]
    assert [cell.implementation for cell in gru_cells] == [1, 2]
    features = training.holdout.features
    ours, theirs = (m.scores(features, with_reasons=True) for m in (loaded, trained))
    np.testing.assert_allclose(ours["propensity"], theirs["propensity"], rtol=1e-6)
    pd.testing.assert_frame_equal(
        ours.drop(columns="propensity"), theirs.drop(columns="propensity")
    )


def test_padding_positions_do_not_change_the_score(training, trained):
    features = training.holdout.features
    noisy = features.take(np.arange(len(features)))
    noisy.numeric[noisy.tokens == 0] = 99.0
    np.testing.assert_allclose(trained.raw_scores(noisy), trained.raw_scores(features), rtol=1e-6)


def test_scores_with_reasons_match_plain_scores(training, trained):
    features = training.holdout.features
    with_reasons = trained.scores(features, with_reasons=True)
    plain = trained.scores(features, with_reasons=False)
    np.testing.assert_allclose(with_reasons["propensity"], plain["propensity"], rtol=1e-5)
    assert list(with_reasons.columns) == [
        "customer_id",
        "propensity",
        "reason_1",
        "reason_2",
        "reason_3",
    ]
    assert with_reasons[[f"reason_{i + 1}" for i in range(N_REASONS)]].notna().all().all()
    assert not with_reasons["reason_1"].isin(["padding"]).any()
    # The model's one traced function serves any batch size: a partition of 7 customers
    # gets the same scores and reasons as those customers had in the larger one.
    part = trained.scores(features.take(np.arange(7)), with_reasons=True)
    pd.testing.assert_frame_equal(part, with_reasons.iloc[:7], rtol=1e-6)


def test_sum_by_token_against_a_hand_computed_example():
    tokens = np.array([[3, 4, 3, 0], [2, 0, 0, 0]])
    per_event = np.array([[0.5, -1.0, 0.25, 0.0], [2.0, 0.0, 0.0, 0.0]])
    expected = np.array([[0.0, 0.0, 0.0, 0.75, -1.0], [0.0, 0.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(sum_by_token(tokens, per_event, 5), expected)


def test_static_labels_read_as_words():
    assert static_label("count_add_to_cart_7d") == "add_to_cart events, last 7 days"
    assert static_label("recency") == "days since last event"


def test_train_and_evaluate_reports_every_contender_on_one_holdout(events):
    result = train_and_evaluate(
        events, events["occurred_at"].max(), SEQUENCE, TINY, n_snapshots=3, stride_days=30
    )
    table = result.evaluation.table
    assert set(table) == {"model", "model_raw", "recency", "rfm_logistic", "rfm_gbm"}
    n = {scores["n"] for scores in table.values()}
    assert n == {result.data["n_holdout"]}
    assert result.calibration.keys() >= {"identity"}


def evaluation(model: float, champion: float | None, baselines: dict[str, float]) -> Evaluation:
    table = {"model": {"roc_auc": model}, **{k: {"roc_auc": v} for k, v in baselines.items()}}
    if champion is not None:
        table["champion"] = {"roc_auc": champion}
    return Evaluation(table=table, baselines=tuple(baselines))


@pytest.mark.parametrize(
    ("model", "champion", "promote", "reason"),
    [
        (0.80, None, True, "first champion"),
        (0.74, None, False, "does not beat the best baseline rfm_gbm"),
        (0.78, 0.782, True, "vs champion"),
        (0.78, 0.79, False, "below the champion's 0.7900"),
    ],
)
def test_promotion_rule(model, champion, promote, reason):
    decision = decide_promotion(
        evaluation(model, champion, {"recency": 0.70, "rfm_gbm": 0.75}), tolerance=0.005
    )
    assert decision.promote is promote
    assert reason in decision.reason


def test_force_promote_overrides_the_rule():
    decision = decide_promotion(evaluation(0.6, 0.9, {"rfm_gbm": 0.75}), 0.005, force=True)
    assert decision.promote
    assert "forced" in decision.reason


@pytest.mark.parametrize(
    ("requested", "message"),
    [("2030-01-01", "in the future"), ("2019-01-01", "before the first event")],
)
def test_as_of_outside_the_data_is_refused(requested, message):
    first, last, now = (pd.Timestamp(d) for d in ("2020-01-01", "2021-01-01", "2026-11-29"))
    with pytest.raises(ValueError, match=message):
        resolve_as_of(pd.Timestamp(requested), first, last, now)
    assert resolve_as_of(None, first, last, now) == last


def test_a_purchases_only_log_with_one_time_buyers_trains(events):
    purchases = events[events["event_type"] == "purchase"]
    one_time = purchases.groupby("customer_id").size().eq(1).sum()
    assert one_time > 0
    result = train_and_evaluate(
        purchases, purchases["occurred_at"].max(), SEQUENCE, TINY, n_snapshots=3, stride_days=30
    )
    assert result.data["vocabulary"] == ["purchase"]
    assert 0.0 <= result.evaluation.table["model"]["roc_auc"] <= 1.0


def test_a_horizon_longer_than_the_data_is_refused(events):
    with pytest.raises(ValueError, match="no events at or before"):
        train_and_evaluate(
            events,
            events["occurred_at"].max(),
            SequenceConfig(max_len=12, horizon_days=400),
            TINY,
            n_snapshots=3,
            stride_days=400,
        )

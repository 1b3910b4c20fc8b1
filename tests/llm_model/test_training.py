"""Training and evaluation: determinism, every contender on one holdout (a kind that cannot
be trained skipped with its reason), refused inputs."""

import dataclasses
import random
import threading

import numpy as np
import pytest
from sklearn.metrics import log_loss

from llm_model import metrics
from llm_model.calibration import METHODS, Calibrator
from llm_model.drift import SCORE, reference_bins
from llm_model.level import LevelInputs, forecast_level, purchase_summary
from llm_model.manifest import ModelConfig, TrainingPlan
from llm_model.sequences import Snapshot, TrainingSet, build_training_set
from llm_model.training import (
    Contenders,
    RetrainResult,
    calibration_split,
    evaluate,
    fit_contenders,
    fit_model,
    population_scores,
    train_and_evaluate,
    with_drift_references,
)


def test_same_data_and_seed_give_the_same_predictions(
    training, judge, trained, tiny_config, sequence_config
):
    # Background threads (Prefect's, in the flows) draw from Python's global `random` too.
    stop = threading.Event()

    def draw_until_stopped() -> None:
        while not stop.wait(0.0005):
            random.random()

    other_thread = threading.Thread(target=draw_until_stopped)
    other_thread.start()
    try:
        again, _ = fit_model(training, judge, tiny_config, sequence_config, verbose=0)
    finally:
        stop.set()
        other_thread.join()
    features = training.holdout.features
    np.testing.assert_array_equal(trained.raw_scores(features), again.raw_scores(features))


def test_train_and_evaluate_reports_every_contender_on_one_holdout(
    events, tiny_config, sequence_config
):
    result = train_and_evaluate(
        events,
        events["occurred_at"].max(),
        TrainingPlan(sequence_config, tiny_config, n_snapshots=3, stride_days=30),
    )
    table = result.evaluation.table
    assert set(table) == {
        "gru",
        "gru_raw",
        "recency",
        "logistic",
        "gbm",
        "gru_hybrid",
        "gru_hybrid_raw",
    }
    assert result.evaluation.contenders == ("gru", "logistic", "gbm", "gru_hybrid")
    n = {scores["n"] for scores in table.values()}
    assert n == {result.data.n_holdout}
    assert result.contenders.calibration.keys() >= {"identity", "gru_hybrid identity"}
    assert result.contenders.failures == {}
    assert all(m.manifest.drift_reference for m in result.contenders.models.values())

    record = result.metrics("gbm", "log_loss", champion_version_id=4)
    assert (record.winner, record.selection_metric, record.champion_version_id) == (
        "gbm",
        "log_loss",
        4,
    )
    assert (record.table, record.contenders) == (table, result.evaluation.contenders)
    assert record.calibration_log_loss == result.contenders.calibration
    assert record.data == result.data


def test_a_purchases_only_log_with_one_time_buyers_trains(events, tiny_config, sequence_config):
    purchases = events[events["event_type"] == "purchase"]
    one_time = purchases.groupby("customer_id").size().eq(1).sum()
    assert one_time > 0
    result = train_and_evaluate(
        purchases,
        purchases["occurred_at"].max(),
        TrainingPlan(sequence_config, tiny_config, n_snapshots=3, stride_days=30),
    )
    assert result.data.vocabulary == ("purchase",)
    assert 0.0 <= result.evaluation.table["gru"]["roc_auc"] <= 1.0


def test_a_horizon_longer_than_the_data_is_refused(events, tiny_config, sequence_config):
    with pytest.raises(ValueError, match=r"0 of the snapshot cutoffs .* fall at or after"):
        train_and_evaluate(
            events,
            events["occurred_at"].max(),
            TrainingPlan(
                dataclasses.replace(sequence_config, horizon_days=400),
                tiny_config,
                n_snapshots=3,
                stride_days=400,
            ),
        )


def test_evaluate_scores_each_contender_the_recency_reference_and_the_champion(
    training, events, trained, static_models
):
    holdout = training.holdout
    logistic = static_models["logistic"]

    # The champion rebuilds the holdout features with its own vocabulary and settings.
    champion = trained.features(events, holdout.features.customer_ids, holdout.cutoff)
    evaluation = evaluate({"logistic": logistic}, training, trained.propensity(champion))

    assert evaluation.contenders == ("logistic",)
    assert set(evaluation.table) == {"logistic", "recency", "champion"}
    # The champion was trained on the same vocabulary and settings: the same features.
    expected = {
        "logistic": logistic.propensity(holdout.features),
        "champion": trained.propensity(holdout.features),
    }
    for name, scores in expected.items():
        np.testing.assert_allclose(evaluation.scores[name], scores, rtol=1e-6)
        assert evaluation.table[name] == pytest.approx(metrics.summary(holdout.labels, scores))
    np.testing.assert_array_equal(evaluation.labels, holdout.labels)


def test_a_recurrent_model_without_validation_positives_leaves_the_static_ones(
    training, judge, tiny_config, sequence_config
):
    # 0.0001 of the customers: the validation split holds none of them, so no positives.
    config = dataclasses.replace(tiny_config, validation_share=0.0001)
    with pytest.raises(ValueError, match="too few positive labels"):
        fit_model(training, judge, config, sequence_config, verbose=0)

    contenders = fit_contenders(training, judge, config, sequence_config, verbose=0)

    assert list(contenders.models) == ["logistic", "gbm"]
    assert list(contenders.failures) == ["gru", "gru_hybrid"]
    assert "too few positive labels" in contenders.failures["gru"]
    assert "too few positive labels" in contenders.failures["gru_hybrid"]
    assert contenders.calibration == {}


def test_without_the_hybrid_the_contenders_are_the_plain_ones(
    training, judge, tiny_config, sequence_config
):
    contenders = fit_contenders(
        training, judge, tiny_config, sequence_config, verbose=0, hybrid=False
    )
    assert (list(contenders.models), contenders.failures) == (["gru", "logistic", "gbm"], {})


def test_no_trainable_contender_is_an_error_naming_each_reason(training, judge, sequence_config):
    train = training.train
    no_positives = dataclasses.replace(
        training, train=Snapshot(train.cutoff, train.features, np.zeros_like(train.labels))
    )
    config = ModelConfig(cell="lstm", units=4, embedding_dim=4, dense_units=4, epochs=1)
    with pytest.raises(ValueError, match=r"^no contender could be trained") as raised:
        fit_contenders(no_positives, judge, config, sequence_config, verbose=0)
    message = str(raised.value)
    for kind in (
        "lstm: too few positive labels",
        "logistic: the training",
        "gbm: the training",
        "lstm_hybrid: no gbm contender to build on",
    ):
        assert kind in message


def test_the_calibrators_are_chosen_on_holdout_customers_the_reported_figures_never_see(
    events, tiny_config, sequence_config
):
    full = build_training_set(events, events["occurred_at"].max(), sequence_config, n_snapshots=3)
    training, judge = calibration_split(full)
    reported_ids = set(training.holdout.features.customer_ids)
    judge_ids = set(judge.features.customer_ids)
    assert reported_ids.isdisjoint(judge_ids)
    assert reported_ids | judge_ids == set(full.holdout.features.customer_ids)
    assert 0.35 < len(judge_ids) / len(full.holdout.labels) < 0.65
    assert training.train is full.train

    model, report = fit_model(training, judge, tiny_config, sequence_config, verbose=0)

    def identity_loss(snapshot: Snapshot) -> float:
        raw = np.clip(model.raw_scores(snapshot.features), 1e-6, 1 - 1e-6)
        return log_loss(snapshot.labels, raw)

    assert report["identity"] == pytest.approx(identity_loss(judge), rel=1e-6)
    assert report["identity"] != pytest.approx(identity_loss(training.holdout), rel=1e-3)


@pytest.fixture(scope="module")
def retrained(events, tiny_config, sequence_config) -> tuple[RetrainResult, TrainingSet, Snapshot]:
    """A retrain of every contender on the tiny events, and its snapshots rebuilt apart:
    the training set with the reported half of the holdout, and the half that chose the
    calibrators."""
    as_of = events["occurred_at"].max()
    result = train_and_evaluate(
        events, as_of, TrainingPlan(sequence_config, tiny_config, n_snapshots=3, stride_days=30)
    )
    full = build_training_set(events, as_of, sequence_config, n_snapshots=3, stride_days=30)
    return (result, *calibration_split(full))


def test_the_reported_holdout_is_the_half_the_calibrators_never_saw(retrained):
    result, reported, judge = retrained

    np.testing.assert_array_equal(result.evaluation.labels, reported.holdout.labels)
    assert (result.data.n_holdout, result.data.n_calibration) == (
        len(reported.holdout.labels),
        len(judge.labels),
    )
    gbm = result.contenders.models["gbm"].propensity(reported.holdout.features)
    assert result.evaluation.table["gbm"] == pytest.approx(
        metrics.summary(reported.holdout.labels, gbm)
    )


@pytest.mark.parametrize("kind", ["gru", "gru_hybrid"])
def test_a_retrain_records_its_calibrators_log_loss_on_the_half_that_chose_them(retrained, kind):
    """What a retrain records of its calibrators (ModelMetrics.calibration_log_loss, keyed
    by method for the plain recurrent model and by "kind method" for the hybrid) is their
    log loss on the choosing half of the holdout, recomputed here with scikit-learn from the
    model's raw scores; the reported half, which the choice must never see, gives another."""
    result, reported, judge = retrained
    model = result.contenders.models[kind]
    recorded = result.metrics(kind, "roc_auc", None).calibration_log_loss
    key = {"gru": "{}", "gru_hybrid": "gru_hybrid {}"}[kind].format

    def loss(snapshot: Snapshot, calibrator: Calibrator) -> float:
        raw = np.clip(model.raw_scores(snapshot.features), 1e-6, 1 - 1e-6)
        return log_loss(snapshot.labels, calibrator.transform(raw))

    chosen, identity = model.manifest.calibrator, Calibrator("identity")
    assert recorded[key("identity")] == pytest.approx(loss(judge, identity), rel=1e-6)
    assert recorded[key(chosen.method)] == pytest.approx(loss(judge, chosen), rel=1e-6)
    assert recorded[key(chosen.method)] == min(recorded[key(m)] for m in METHODS)
    assert recorded[key("identity")] != pytest.approx(loss(reported.holdout, identity), rel=1e-3)


def test_every_contender_measures_drift_against_the_population_and_its_scores_of_it(
    training, trained, static_models, hybrid
):
    models = {"gru": trained, **static_models, "gru_hybrid": hybrid}
    population = training.holdout.features

    contenders = Contenders(models, {}, {})
    scores = population_scores(contenders, population)
    referenced = with_drift_references(contenders, population, scores).models

    expected_features = [reference_bins(column) for column in population.static.T]
    for kind, model in referenced.items():
        reference = model.manifest.drift_reference
        assert reference.names == (*population.static_names, SCORE)
        assert list(reference.bins[:-1]) == expected_features
        assert reference.bins[-1] == reference_bins(models[kind].propensity(population))
        assert dataclasses.replace(model.manifest, drift_reference=None) == models[kind].manifest


def test_the_served_expected_values_total_the_level_forecast_of_the_customers_read(
    retrained, events, sequence_config
):
    result, reported, judge = retrained
    horizon, target = sequence_config.horizon_days, sequence_config.target_event
    summaries = LevelInputs(
        purchase_summary(events, reported.holdout.cutoff, horizon, target),
        purchase_summary(events, events["occurred_at"].max(), horizon, target),
    )
    realized = reported.holdout.values.sum() + judge.values.sum()

    model, value = result.valued("gbm")

    expected = forecast_level(summaries, realized, horizon)
    assert value.level == result.level
    assert (result.level.kind, result.level.failures) == (expected.kind, expected.failures)
    assert result.level.checks == pytest.approx(expected.checks)
    assert result.level.total == pytest.approx(expected.total)
    served = model.scores(result.population, False)["expected_value"]
    assert served.sum() == pytest.approx(result.level.total)
    assert model.manifest.value_scale != pytest.approx(1.0)

"""Value metrics against independent computations, the value models, the rule that
chooses among them and the value model riding in a model's artifact."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from llm_model.archive import UntrustedArtifact
from llm_model.kinds import load_servable
from llm_model.metrics import (
    VALUE_METRIC,
    top_decile_revenue_share,
    value_gini,
    value_summary,
)
from llm_model.promotion import decide_version_promotion
from llm_model.selection import CHAMPION, Evaluation
from llm_model.value import (
    STATIC_VALUE_KINDS,
    ValuedModel,
    evaluate_values,
    fit_value_contenders,
    fit_value_model,
    global_drivers,
    level_scale,
)


def gini_by_lorenz(spend: np.ndarray, predicted: np.ndarray) -> float:
    """google/lifetime_value's reading, written out: the mean of the cumulative revenue
    share, customers ordered by prediction, against the same for the perfect order (no ties
    in the predictions here)."""

    def raw(order: np.ndarray) -> float:
        captured = np.cumsum(spend[order]) / spend.sum()
        return 2 * captured.mean() - 1 - 1 / len(spend)

    return raw(np.argsort(-predicted)) / raw(np.argsort(-spend))


def test_value_gini_matches_the_lorenz_curve_reading():
    rng = np.random.default_rng(3)
    spend = np.where(rng.random(500) < 0.3, rng.lognormal(3, 1, 500), 0.0)
    predicted = spend * rng.lognormal(0, 1, 500) + rng.random(500)
    assert value_gini(spend, predicted) == pytest.approx(gini_by_lorenz(spend, predicted))
    assert value_gini(spend, spend + 1e-9 * np.arange(500)) == pytest.approx(1.0)


def test_value_gini_by_hand():
    # Ordered by prediction: spends 0, 10, 0, 30 of 40. The gains curve passes through
    # (0.25, 0), (0.5, 0.25), (0.75, 0.25), (1, 1): trapezoids 0 + 0.03125 + 0.0625 +
    # 0.15625 = 0.25; the perfect order's (0.75, 1, 1, 1): 0.09375 + 0.21875 + 0.25 + 0.25
    # = 0.8125. (0.25 - 0.5) / (0.8125 - 0.5) = -0.8.
    assert value_gini([0, 10, 0, 30], [4, 3, 2, 1]) == pytest.approx(-0.8)
    assert value_gini([0, 10, 0, 30], [1, 2, 0, 3]) == pytest.approx(1.0)


def test_value_gini_of_0_1_spend_is_2_auc_minus_1():
    rng = np.random.default_rng(5)
    bought = (rng.random(1_000) < 0.2).astype(float)
    predicted = bought + rng.normal(0, 0.8, 1_000)
    assert value_gini(bought, predicted) == pytest.approx(2 * roc_auc_score(bought, predicted) - 1)


def test_top_decile_revenue_share_against_pandas():
    rng = np.random.default_rng(8)
    spend = np.where(rng.random(95) < 0.4, rng.lognormal(2, 1, 95), 0.0)
    predicted = rng.random(95)
    top = pd.Series(spend).iloc[pd.Series(predicted).nlargest(10).index]  # ceil(95 / 10)
    assert top_decile_revenue_share(spend, predicted) == pytest.approx(top.sum() / spend.sum())


@pytest.mark.parametrize(
    ("spend", "message"),
    [([0.0] * 20, "no customer spent"), ([1.0, -1.0] * 10, "must be >= 0")],
)
def test_value_metrics_refuse_spend_they_are_undefined_on(spend, message):
    with pytest.raises(ValueError, match=message):
        value_summary(spend, np.ones(20))


@pytest.fixture(scope="module")
def value_models(training):
    return fit_value_contenders(training.train, seed=0)


def test_every_value_kind_trains_on_the_synthetic_snapshots(value_models, training):
    assert set(value_models.models) == set(STATIC_VALUE_KINDS)
    assert value_models.failures == {}
    features = training.holdout.features
    propensity = np.full(len(features), 0.5)
    for model in value_models.models.values():
        expected = model.expected_value(features, propensity)
        assert expected.shape == (len(features),)
        assert (expected >= 0).all() and np.isfinite(expected).all()


def test_two_stage_is_the_propensity_times_the_spend_given_a_purchase(value_models, training):
    model = value_models.models["two_stage"]
    features = training.holdout.features
    propensity = np.linspace(0.0, 1.0, len(features))
    spend = model.regressor.predict(features.static)
    np.testing.assert_allclose(model.expected_value(features, propensity), propensity * spend)


def test_a_snapshot_without_spend_trains_no_value_model(training):
    train = training.train
    no_spend = dataclasses.replace(train, values=np.zeros_like(train.values))
    contenders = fit_value_contenders(no_spend, seed=0)
    assert contenders.models == {}
    assert set(contenders.failures) == set(STATIC_VALUE_KINDS)
    assert "0 training rows with spend" in contenders.failures["two_stage"]


def test_the_value_champion_is_the_best_gini_then_the_lowest_error():
    # Within SELECTION_TIE of the best Gini, the lower mean absolute error wins.
    table = {
        "a": {VALUE_METRIC: 0.600, "mae": 9.0},
        "b": {VALUE_METRIC: 0.5995, "mae": 5.0},
        "c": {VALUE_METRIC: 0.55, "mae": 1.0},
    }
    evaluation = Evaluation(table=table, contenders=("a", "b", "c"), tie_breaker="mae")
    assert evaluation.ranked(VALUE_METRIC) == ["b", "a", "c"]
    far = {**table, "b": {VALUE_METRIC: 0.59, "mae": 5.0}}
    evaluation = Evaluation(table=far, contenders=("a", "b", "c"), tie_breaker="mae")
    assert evaluation.winner(VALUE_METRIC) == "a"


def test_evaluate_values_judges_each_model_on_realized_spend(value_models, training):
    holdout = training.holdout
    propensity = np.full(len(holdout.labels), 0.3)
    champion = holdout.values * 0.5 + 1.0  # ranks spenders perfectly
    evaluation = evaluate_values(value_models.models, holdout, propensity, champion)
    assert evaluation.contenders == STATIC_VALUE_KINDS
    for kind, model in value_models.models.items():
        expected = model.expected_value(holdout.features, propensity)
        assert evaluation.table[kind] == value_summary(holdout.values, expected)
    assert evaluation.table[CHAMPION][VALUE_METRIC] == pytest.approx(1.0)


def value_table(champion: float | None, challenger: float) -> Evaluation:
    table = {"two_stage": {VALUE_METRIC: challenger, "mae": 1.0}}
    if champion is not None:
        table[CHAMPION] = {VALUE_METRIC: champion, "mae": 1.0}
    return Evaluation(table=table, contenders=("two_stage",), tie_breaker="mae")


def propensity_table(champion: float, challenger: float) -> Evaluation:
    table = {
        "gbm": {"roc_auc": challenger, "log_loss": 0.3},
        CHAMPION: {"roc_auc": champion, "log_loss": 0.3},
    }
    return Evaluation(table=table, contenders=("gbm",))


def test_a_version_whose_value_model_falls_short_of_the_champions_is_rejected():
    propensity = propensity_table(champion=0.70, challenger=0.72)
    decision = decide_version_promotion(propensity, value_table(0.60, 0.55), "roc_auc", 0.005)
    assert not decision.promote
    assert "but its value model" in decision.reason
    assert decide_version_promotion(propensity, value_table(0.60, 0.597), "roc_auc", 0.005).promote
    # A champion without a value model is no bar; no value at all leaves the propensity rule.
    decision = decide_version_promotion(propensity, value_table(None, 0.1), "roc_auc", 0.005)
    assert decision.promote and "first champion" not in decision.reason
    assert decide_version_promotion(propensity, None, "roc_auc", 0.005).promote
    worse = propensity_table(champion=0.75, challenger=0.70)
    assert not decide_version_promotion(worse, value_table(0.1, 0.9), "roc_auc", 0.005).promote


def test_global_drivers_are_the_features_that_move_the_value(value_models, training):
    features = training.holdout.features
    static, names = features.static, features.static_names
    model = value_models.models["gbm_poisson"]
    propensity = np.ones(len(static))
    drivers = global_drivers(model, features, propensity)
    assert 0 < len(drivers) <= 5
    assert list(drivers.values()) == sorted(drivers.values(), reverse=True)
    top = next(iter(drivers))
    column = names.index(top)
    at_mean = static.copy()
    at_mean[:, column] = static[:, column].mean()
    moved = np.abs(model.regressor.predict(static) - model.regressor.predict(at_mean))
    assert drivers[top] == pytest.approx(moved.mean())
    assert drivers[top] > 0


def test_a_valued_model_round_trips_through_its_artifact(static_models, value_models, training):
    model = ValuedModel.of(static_models["gbm"], value_models.models["two_stage"])
    loaded = load_servable(model.to_bytes(), model.manifest)
    assert isinstance(loaded, ValuedModel)
    assert loaded.manifest.value_kind == "two_stage"
    features = training.holdout.features
    scores = loaded.scores(features, with_reasons=True)
    expected = model.scores(features, with_reasons=True)
    pd.testing.assert_frame_equal(scores, expected)
    np.testing.assert_allclose(
        scores["expected_value"],
        scores["propensity"] * value_models.models["two_stage"].regressor.predict(features.static),
    )
    # Without its value member (or with the bare propensity bytes), it is refused.
    with pytest.raises(UntrustedArtifact, match="gbm with a value model artifact"):
        load_servable(static_models["gbm"].to_bytes(), model.manifest)


def test_the_level_scale_matches_the_judged_total_and_scales_the_served_values(
    static_models, value_models, judge, training
):
    value = value_models.models["gbm_poisson"]
    propensity = np.full(len(judge.labels), 0.2)
    scale = level_scale(value, judge, propensity)
    predicted = value.expected_value(judge.features, propensity)
    assert (predicted * scale).sum() == pytest.approx(judge.values.sum())
    valued = ValuedModel.of(static_models["gbm"], value, scale)
    features = training.holdout.features
    np.testing.assert_allclose(
        valued.scores(features, False)["expected_value"],
        scale * value.expected_value(features, np.zeros(len(features))),
    )
    no_spend = dataclasses.replace(judge, values=np.zeros_like(judge.values))
    assert level_scale(value, no_spend, propensity) == 1.0


def test_value_models_are_deterministic(training):
    first = fit_value_model("gbm_poisson", training.train, seed=3)
    again = fit_value_model("gbm_poisson", training.train, seed=3)
    static = training.holdout.features.static
    np.testing.assert_array_equal(first.regressor.predict(static), again.regressor.predict(static))

"""The static contenders (logistic, gbm) and the recency reference: the same predictions as
scikit-learn estimators fitted independently on the same static columns, one-class data
refused, and reason codes equal to contributions computed here with numpy."""

import dataclasses

import numpy as np
import pytest
from scipy.special import logit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from llm_model.baselines import RecencyReference, fit_static_model, new_classifier
from llm_model.reasons import static_label
from llm_model.sequences import Snapshot


def reference(kind: str, seed: int):
    """Each static kind as documented, built here without llm_model."""
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, early_stopping=True, random_state=seed
    )


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_each_static_kind_predicts_as_sklearn_fitted_independently(
    training, sequence_config, kind, seed
):
    train, holdout = training.train, training.holdout
    model = fit_static_model(kind, training, sequence_config, seed)

    expected = (
        reference(kind, seed)
        .fit(train.features.static, train.labels)
        .predict_proba(holdout.features.static)[:, 1]
    )
    np.testing.assert_allclose(model.raw_scores(holdout.features), expected, rtol=1e-5)
    # Fitted on log loss, its scores are probabilities already: served uncalibrated.
    np.testing.assert_array_equal(model.propensity(holdout.features), expected)


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_a_static_manifest_describes_its_training(training, sequence_config, static_models, kind):
    manifest = static_models[kind].manifest
    static = training.train.features.static
    assert (manifest.kind, manifest.network, manifest.calibrator.method) == (kind, None, "identity")
    assert (manifest.sequence, manifest.vocabulary) == (sequence_config, training.vocab)
    assert manifest.static_names == training.train.features.static_names
    assert manifest.n_snapshots == 3
    # The library averages the float32 matrix: a few float32 ulps from the float64 mean.
    np.testing.assert_allclose(
        manifest.static_mean, static.astype(np.float64).mean(axis=0), rtol=1e-5
    )


def test_the_recency_reference_predicts_as_sklearn_fitted_independently(training):
    train, holdout = training.train, training.holdout
    column = [list(train.features.static_names).index("recency")]
    expected = (
        LogisticRegression()
        .fit(train.features.static[:, column], train.labels)
        .predict_proba(holdout.features.static[:, column])[:, 1]
    )
    # float32 features: a column selection that copies the matrix (another memory layout)
    # moves the logistic fit's sums by a few ulps, nothing more.
    np.testing.assert_allclose(
        RecencyReference.fit(train).propensity(holdout.features), expected, rtol=1e-5
    )


def test_the_seed_reaches_the_gradient_boosting(training, sequence_config):
    # Control for the seeds above: with early stopping's random validation split, two seeds
    # give two different models, so matching the reference at each seed is a real check.
    features = training.holdout.features
    for kind, differs in (("gbm", True), ("logistic", False)):
        first, second = (
            fit_static_model(kind, training, sequence_config, seed).raw_scores(features)
            for seed in (0, 3)
        )
        assert (not np.array_equal(first, second)) is differs, kind


def test_recency_uses_only_the_recency_column(training):
    reference = RecencyReference.fit(training.train)
    features = training.holdout.features
    names = features.static_names
    recency = features.static[:, names.index("recency")].astype(np.float64)
    p = reference.propensity(features)

    # Noise in every other column changes nothing; noise in recency does.
    noisy = features.take(np.arange(len(features)))
    rng = np.random.default_rng(0)
    others = [i for i, name in enumerate(names) if name != "recency"]
    noisy.static[:, others] += rng.normal(0, 5, (len(features), len(others)))
    np.testing.assert_array_equal(reference.propensity(noisy), p)
    noisy.static[:, names.index("recency")] += rng.normal(0, 5, len(features))
    assert not np.allclose(reference.propensity(noisy), p)
    # A one-feature logistic fit is monotone: the more recent, the likelier to buy, so it
    # ranks the holdout exactly as minus the recency column does.
    assert np.all(np.diff(p[np.argsort(recency, kind="stable")]) <= 0)
    labels = training.holdout.labels
    assert roc_auc_score(labels, p) == pytest.approx(roc_auc_score(labels, -recency), abs=1e-12)


def test_logistic_uses_every_static_column(training, static_models):
    model = static_models["logistic"]
    features = training.holdout.features
    p = model.raw_scores(features)
    for column, name in enumerate(features.static_names):
        shifted = features.take(np.arange(len(features)))
        shifted.static[:, column] += 1.0
        assert not np.allclose(model.raw_scores(shifted), p, rtol=0, atol=1e-9), name


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_training_labels_are_refused(training, sequence_config, label):
    train = training.train
    one_class = dataclasses.replace(
        training, train=Snapshot(train.cutoff, train.features, np.full_like(train.labels, label))
    )
    for kind in ("logistic", "gbm"):
        with pytest.raises(ValueError, match="one class"):
            fit_static_model(kind, one_class, sequence_config, seed=0)


def test_an_unknown_static_kind_is_refused():
    with pytest.raises(ValueError, match="'xgboost'"):
        new_classifier("xgboost", seed=0)


# --- reason codes ------------------------------------------------------------------------


def static_labels(names: tuple[str, ...]) -> list[str]:
    return [static_label(name) for name in names]


def test_logistic_reasons_are_its_exact_log_odds_terms(
    training, static_models, reasons_are_the_largest
):
    model = static_models["logistic"]
    features = training.holdout.features
    scaler, fitted = model.classifier[0], model.classifier[-1]
    expected = (features.static.astype(np.float64) - scaler.mean_) / scaler.scale_ * fitted.coef_[0]

    raw, reasons = model.raw_scores_with_reasons(features)

    np.testing.assert_allclose(model.contributions(features.static, raw), expected, atol=1e-6)
    # The terms are the whole of the score: with the intercept they sum to its log-odds.
    np.testing.assert_allclose(expected.sum(axis=1) + fitted.intercept_[0], logit(raw), atol=1e-5)
    reasons_are_the_largest(reasons, expected, static_labels(features.static_names))


def test_gbm_reasons_are_the_log_odds_lost_at_the_training_mean(
    training, static_models, reasons_are_the_largest
):
    model = static_models["gbm"]
    features = training.holdout.features
    static = features.static.astype(np.float64)
    mean = training.train.features.static.astype(np.float64).mean(axis=0)

    def log_odds(x: np.ndarray) -> np.ndarray:
        p = model.classifier.predict_proba(x)[:, 1]
        assert ((p > 1e-6) & (p < 1 - 1e-6)).all()  # no clipping in play
        return logit(p)

    expected = np.empty_like(static)
    for column in range(static.shape[1]):
        occluded = static.copy()
        occluded[:, column] = mean[column]
        expected[:, column] = log_odds(static) - log_odds(occluded)
    assert np.abs(expected).max() > 0.1  # the features matter: a real comparison

    raw, reasons = model.raw_scores_with_reasons(features)

    np.testing.assert_allclose(model.contributions(features.static, raw), expected, atol=1e-6)
    reasons_are_the_largest(reasons, expected, static_labels(features.static_names))

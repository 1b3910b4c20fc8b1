"""The static contenders (logistic, gbm) and the recency reference: the same predictions as
scikit-learn estimators fitted independently on the same static columns, one-class data
refused, and reason codes equal to contributions computed here with numpy, read with the
customer's own figures and direction on models built by hand."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from llm_model.baselines import RecencyReference, StaticModel, fit_static_model, new_classifier
from llm_model.calibration import Calibrator
from llm_model.manifest import ModelManifest
from llm_model.reasons import REASON_COLUMNS, WEIGHT_COLUMNS
from llm_model.sequences import Features, SequenceConfig, Snapshot, Vocabulary, static_names


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
    reasons_are_the_largest(reasons, expected)


def test_gbm_reasons_are_the_log_odds_lost_at_the_training_mean(
    training, static_models, reasons_are_the_largest, occlusion
):
    model = static_models["gbm"]
    features = training.holdout.features
    mean = training.train.features.static.astype(np.float64).mean(axis=0)
    expected = occlusion(model.classifier, features.static, mean)
    assert np.abs(expected).max() > 0.1  # the features matter: a real comparison

    raw, reasons = model.raw_scores_with_reasons(features)

    np.testing.assert_allclose(model.contributions(features.static, raw), expected, atol=1e-6)
    reasons_are_the_largest(reasons, expected)


# Customers built by hand, for a vocabulary of two event types counted over 7 and 30 days.
HAND_SEQUENCE = SequenceConfig(windows_days=(7, 30))
HAND_VOCABULARY = Vocabulary(("add_to_cart", "purchase"))
HAND_NAMES = static_names(HAND_VOCABULARY, HAND_SEQUENCE)
# Raw figures (static features are their log1p), in HAND_NAMES' order.
HAND_MEANS = [30, 10, 100, 90, 200, 0.5, 1, 0.1, 0.3]
HAND_FIGURES = [
    [212, 40, 1234.4, 212, 400, 3, 5, 0, 1],
    [0.2, 1, 0, 365, 0.2, 1, 1, 0, 0],
]
HAND_TEXTS = [
    [
        "no event for 212 days",
        "40 events in all",
        "spent 1234 on purchase in all",
        "no purchase for 212 days",
        "customer for 400 days",
        "3 add_to_cart in last 7 days",
        "5 add_to_cart in last 30 days",
        "no purchase in last 7 days",
        "1 purchase in last 30 days",
    ],
    [
        "event in the last day",
        "1 event in all",
        "spent 0 on purchase in all",
        "no purchase for 365 days",
        "customer for less than a day",
        "1 add_to_cart in last 7 days",
        "1 add_to_cart in last 30 days",
        "no purchase in last 7 days",
        "no purchase in last 30 days",
    ],
]


def hand_manifest(kind: str) -> ModelManifest:
    return ModelManifest(
        kind=kind,
        sequence=HAND_SEQUENCE,
        vocabulary=HAND_VOCABULARY,
        calibrator=Calibrator("identity"),
        static_names=HAND_NAMES,
        n_snapshots=2,
        snapshot_stride_days=30,
        static_mean=tuple(np.log1p(HAND_MEANS)),
    )


def hand_features() -> Features:
    n = len(HAND_FIGURES)
    return Features(
        customer_ids=np.array(["hand0", "hand1"], dtype=object),
        tokens=np.zeros((n, HAND_SEQUENCE.max_len), dtype=np.int32),
        numeric=np.zeros((n, HAND_SEQUENCE.max_len, 3), dtype=np.float32),
        static=np.log1p(np.array(HAND_FIGURES)).astype(np.float32),
        static_names=HAND_NAMES,
    )


def assert_reasons_read(reasons: pd.DataFrame, contributions: np.ndarray) -> None:
    """Each hand-built customer's reasons are the texts of their three largest contributions
    by absolute value, with the direction of each, and weigh as much."""
    for row, texts in enumerate(HAND_TEXTS):
        top = np.argsort(-np.abs(contributions[row]), kind="stable")[:3]
        ways = ["raises" if contributions[row, i] > 0 else "lowers" for i in top]
        expected = [f"{texts[i]} ({way})" for i, way in zip(top, ways, strict=True)]
        assert reasons.loc[row, REASON_COLUMNS].tolist() == expected
        np.testing.assert_allclose(
            reasons.loc[row, WEIGHT_COLUMNS].to_numpy(dtype=np.float64),
            contributions[row, top],
            rtol=1e-6,
        )


def test_a_hand_built_logistic_model_gives_its_terms_as_reasons():
    """Coefficient x scaled value of a pipeline set by hand: the largest terms, a negative
    one among them, read with the customer's own figures."""
    scaled_by = np.array([1, 1, 2, 1, 1, 1, 1, 1, 1], dtype=np.float64)
    coefficients = np.array([-1.0, 0.2, 0.5, -0.3, 0.1, 2.0, 0.3, 0.4, 0.6])
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = np.log1p(HAND_MEANS), scaled_by, scaled_by**2
    scaler.n_features_in_, scaler.n_samples_seen_ = len(HAND_NAMES), 100
    logistic = LogisticRegression()
    logistic.coef_, logistic.intercept_ = coefficients[None, :], np.array([-2.0])
    logistic.classes_, logistic.n_features_in_ = np.array([0, 1]), len(HAND_NAMES)
    model = StaticModel(make_pipeline(scaler, logistic), hand_manifest("logistic"))
    static = np.log1p(np.array(HAND_FIGURES, dtype=np.float32)).astype(np.float64)
    terms = (static - np.log1p(HAND_MEANS)) / scaled_by * coefficients

    _, reasons = model.raw_scores_with_reasons(hand_features())

    assert reasons.loc[0, REASON_COLUMNS].tolist() == [
        "3 add_to_cart in last 7 days (raises)",
        "no event for 212 days (lowers)",
        "spent 1234 on purchase in all (raises)",
    ]
    assert reasons.loc[1, REASON_COLUMNS].tolist() == [
        "event in the last day (raises)",
        "spent 0 on purchase in all (lowers)",
        "1 add_to_cart in last 7 days (raises)",
    ]
    assert_reasons_read(reasons, terms)


def test_a_hand_built_gbm_gives_what_occlusion_takes_as_reasons(occlusion):
    """A booster fitted on data whose label follows recent carts and recency: its reasons
    are the log-odds each feature loses at the training mean, computed here."""
    rng = np.random.default_rng(0)
    figures = rng.exponential(HAND_MEANS, size=(2000, len(HAND_NAMES)))
    static = np.log1p(figures)
    likely = 2 * static[:, 5] - static[:, 0] + 0.5 * static[:, 2] + rng.normal(0, 1, len(static))
    classifier = HistGradientBoostingClassifier(max_iter=50, random_state=0)
    classifier.fit(static, likely > np.median(likely))
    model = StaticModel(classifier, hand_manifest("gbm"))
    expected = occlusion(classifier, hand_features().static, np.log1p(HAND_MEANS))

    _, reasons = model.raw_scores_with_reasons(hand_features())

    assert_reasons_read(reasons, expected)

"""The RFM baselines: the same predictions as scikit-learn estimators fitted independently on
the same static columns, and the recency baseline ranks by recency alone."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from llm_model.baselines import fit_baselines


def by_name(baselines):
    return {baseline.name: baseline for baseline in baselines}


def references(seed: int) -> dict:
    """Each baseline as documented, built here without llm_model: (estimator, columns)."""
    return {
        "recency": (LogisticRegression(), "recency"),
        "rfm_logistic": (
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
            "every",
        ),
        "rfm_gbm": (
            HistGradientBoostingClassifier(
                max_iter=200, learning_rate=0.05, early_stopping=True, random_state=seed
            ),
            "every",
        ),
    }


@pytest.mark.parametrize("seed", [0, 3])
def test_each_baseline_predicts_as_sklearn_fitted_independently(training, seed):
    train, holdout = training.train, training.holdout
    recency = list(train.features.static_names).index("recency")

    baselines = by_name(fit_baselines(train, seed))

    assert list(baselines) == ["recency", "rfm_logistic", "rfm_gbm"]
    for name, (estimator, wanted) in references(seed).items():
        columns = [recency] if wanted == "recency" else slice(None)
        estimator.fit(train.features.static[:, columns], train.labels)
        expected = estimator.predict_proba(holdout.features.static[:, columns])[:, 1]
        # float32 features: a column selection that copies the matrix (another memory layout)
        # moves the logistic fit's sums by a few ulps, nothing more.
        np.testing.assert_allclose(
            baselines[name].propensity(holdout.features), expected, rtol=1e-5, err_msg=name
        )


def test_the_seed_reaches_the_gradient_boosting(training):
    # Control for the seeds above: with early stopping's random validation split, two seeds
    # give two different models, so matching the reference at each seed is a real check.
    first, second = (by_name(fit_baselines(training.train, seed)) for seed in (0, 3))
    features = training.holdout.features
    assert not np.array_equal(
        first["rfm_gbm"].propensity(features), second["rfm_gbm"].propensity(features)
    )
    np.testing.assert_array_equal(
        first["rfm_logistic"].propensity(features), second["rfm_logistic"].propensity(features)
    )


def test_recency_uses_only_the_recency_column(training):
    baseline = by_name(fit_baselines(training.train))["recency"]
    features = training.holdout.features
    names = features.static_names
    recency = features.static[:, names.index("recency")].astype(np.float64)
    p = baseline.propensity(features)

    # Noise in every other column changes nothing; noise in recency does.
    noisy = features.take(np.arange(len(features)))
    rng = np.random.default_rng(0)
    others = [i for i, name in enumerate(names) if name != "recency"]
    noisy.static[:, others] += rng.normal(0, 5, (len(features), len(others)))
    np.testing.assert_array_equal(baseline.propensity(noisy), p)
    noisy.static[:, names.index("recency")] += rng.normal(0, 5, len(features))
    assert not np.allclose(baseline.propensity(noisy), p)
    # A one-feature logistic fit is monotone: the more recent, the likelier to buy, so it
    # ranks the holdout exactly as minus the recency column does.
    assert np.all(np.diff(p[np.argsort(recency, kind="stable")]) <= 0)
    labels = training.holdout.labels
    assert roc_auc_score(labels, p) == pytest.approx(roc_auc_score(labels, -recency), abs=1e-12)


def test_rfm_logistic_uses_every_static_column(training):
    baseline = by_name(fit_baselines(training.train))["rfm_logistic"]
    features = training.holdout.features
    p = baseline.propensity(features)
    for column, name in enumerate(features.static_names):
        shifted = features.take(np.arange(len(features)))
        shifted.static[:, column] += 1.0
        assert not np.allclose(baseline.propensity(shifted), p, rtol=0, atol=1e-9), name

"""Classic baselines the recurrent model must beat, trained on the same snapshots.

All of them see only the static features (recency, frequency, monetary, tenure and
per-type counts), which is exactly what an RFM model knows about a customer.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from llm_model.sequences import Features, Snapshot


@dataclass(frozen=True)
class Baseline:
    name: str
    columns: tuple[int, ...]
    classifier: ClassifierMixin

    def propensity(self, features: Features) -> np.ndarray:
        return self.classifier.predict_proba(features.static[:, list(self.columns)])[:, 1]


def columns_of(static_names: tuple[str, ...], wanted: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(static_names.index(name) for name in wanted)


def baseline_specs(static_names: tuple[str, ...], seed: int) -> list[Baseline]:
    every = tuple(range(len(static_names)))
    return [
        # Recency alone, mapped to a probability by a one-feature logistic fit.
        Baseline("recency", columns_of(static_names, ("recency",)), LogisticRegression()),
        Baseline(
            "rfm_logistic",
            every,
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
        ),
        Baseline(
            "rfm_gbm",
            every,
            HistGradientBoostingClassifier(
                max_iter=200, learning_rate=0.05, early_stopping=True, random_state=seed
            ),
        ),
    ]


def fit_baselines(train: Snapshot, seed: int = 0) -> list[Baseline]:
    names = train.features.static_names
    baselines = baseline_specs(names, seed)
    for baseline in baselines:
        baseline.classifier.fit(train.features.static[:, list(baseline.columns)], train.labels)
    return baselines

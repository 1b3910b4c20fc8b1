"""The contenders that see only the static features (recency, frequency, monetary, tenure
and per-type counts: what an RFM model knows), trained on the same snapshots as the
recurrent model.

Logistic regression and gradient boosting are served like any model: stored with skops
and loaded by its safe loader, which rebuilds only trusted types (never a pickle). The
recency heuristic is a reference only.
"""

from dataclasses import dataclass
from zipfile import BadZipFile

import numpy as np
import pandas as pd
import skops.io
from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from llm_model.archive import UntrustedArtifact
from llm_model.calibration import Calibrator, log_odds
from llm_model.kinds import STATIC_KINDS
from llm_model.manifest import ModelManifest
from llm_model.reasons import static_descriptions, static_figures, top_reasons
from llm_model.sequences import Features, SequenceConfig, Snapshot, TrainingSet
from llm_model.servable import ServableModel

# What skops may rebuild beyond its own safe defaults: the trees of a fitted boosting model.
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def new_classifier(kind: str, seed: int) -> ClassifierMixin:
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if kind == "gbm":
        return HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, early_stopping=True, random_state=seed
        )
    raise ValueError(f"unknown static model kind {kind!r}; expected one of {STATIC_KINDS}")


@dataclass(frozen=True)
class StaticModel(ServableModel):
    """A scikit-learn classifier on every static feature, with its manifest."""

    classifier: ClassifierMixin
    manifest: ModelManifest

    def __post_init__(self) -> None:
        if not isinstance(self.classifier, Pipeline) and len(self.manifest.static_mean) != len(
            self.manifest.static_names
        ):
            raise ValueError(
                f"{self.manifest.kind} manifest has {len(self.manifest.static_mean)} training "
                f"means for {len(self.manifest.static_names)} static features: its reasons "
                "cannot be computed"
            )

    def raw_scores(self, features: Features) -> np.ndarray:
        return self.raw_scores_of(features.static)

    def raw_scores_with_reasons(self, features: Features) -> tuple[np.ndarray, pd.DataFrame]:
        raw = self.raw_scores(features)
        reasons = top_reasons(
            self.contributions(features.static, raw),
            static_figures(features.static),
            static_descriptions(self.manifest.static_names, self.manifest.sequence),
        )
        return raw, reasons

    def contributions(self, static: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Per customer and static feature, its share of the score's log-odds."""
        if isinstance(self.classifier, Pipeline):
            # Exact: the log-odds are the intercept plus these terms.
            scaler, logistic = self.classifier[0], self.classifier[-1]
            return scaler.transform(static) * logistic.coef_[0]
        return self.occlusion(static, raw)

    def occlusion(self, static: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """How far the log-odds fall when a feature is set to its training mean."""
        scored = log_odds(raw)
        out = np.empty_like(static, dtype=np.float64)
        for column, mean in enumerate(self.manifest.static_mean):
            occluded = static.copy()
            occluded[:, column] = mean
            without = self.raw_scores_of(occluded)
            out[:, column] = scored - log_odds(without)
        return out

    def raw_scores_of(self, static: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(static)[:, 1]

    def to_bytes(self) -> bytes:
        return skops.io.dumps(self.classifier)

    @classmethod
    def from_artifact(cls, artifact: bytes, manifest: ModelManifest) -> "StaticModel":
        return cls(load_skops(artifact, manifest.kind), manifest)


def load_skops(artifact: bytes, what: str) -> object:
    """A scikit-learn estimator from skops bytes, refused (UntrustedArtifact, naming `what`)
    unless it holds only types this service trusts."""
    try:
        untrusted = set(skops.io.get_untrusted_types(data=artifact)) - set(TRUSTED_TYPES)
    except (BadZipFile, ValueError, KeyError) as error:
        raise UntrustedArtifact(f"{what} artifact is not a skops file ({error})") from None
    if untrusted:
        raise UntrustedArtifact(
            f"{what} artifact holds types this service does not trust: "
            f"{', '.join(sorted(untrusted))}"
        )
    return skops.io.loads(artifact, trusted=TRUSTED_TYPES)


def fit_static_model(
    kind: str, training: TrainingSet, sequence: SequenceConfig, seed: int
) -> StaticModel:
    """A classifier of `kind` on the training snapshots' static features; its scores are
    probabilities already (fitted on log loss), so it keeps them uncalibrated."""
    train = training.train
    if len(np.unique(train.labels)) < 2:
        raise ValueError("the training labels hold one class only")
    classifier = new_classifier(kind, seed).fit(train.features.static, train.labels)
    static_mean = tuple(float(v) for v in train.features.static.mean(axis=0))
    manifest = ModelManifest.for_training(
        training, sequence, kind, Calibrator("identity"), static_mean=static_mean
    )
    return StaticModel(classifier, manifest)


@dataclass(frozen=True)
class RecencyReference:
    """Recency alone, mapped to a probability by a one-feature logistic fit: the classic
    heuristic every model is shown beside, never served."""

    column: int
    classifier: LogisticRegression

    @classmethod
    def fit(cls, train: Snapshot) -> "RecencyReference":
        column = train.features.static_names.index("recency")
        classifier = LogisticRegression().fit(train.features.static[:, [column]], train.labels)
        return cls(column, classifier)

    def propensity(self, features: Features) -> np.ndarray:
        return self.classifier.predict_proba(features.static[:, [self.column]])[:, 1]

"""The recurrent model on top of the boosted baseline (kinds gru_hybrid, lstm_hybrid).

The network is the recurrent model of llm_model.model with one more static input: the
log-odds of the gradient-boosting contender. It learns what the sequence adds to the best
RFM model instead of relearning the RFM model from fewer rows. Trained on out-of-fold
log-odds (boosters fitted without the customer's rows, all of their snapshots), so it never
sees the in-sample scores a booster gives the rows it was fitted on, and which it would
trust too much; the holdout and scoring use the booster fitted on every training row (the
gbm contender itself).

Why an input and not an additive offset, and the figures: docs/benchmarks.md ("The
recurrent hybrid").

Stored as one zip of two members: the network's .keras file and the booster's skops file,
loaded by their own safe loaders (never a pickle).
"""

from dataclasses import dataclass, replace
from functools import cached_property

import keras
import numpy as np
import pandas as pd

from llm_model.archive import pack, unpack
from llm_model.attribution import network_reasons
from llm_model.baselines import StaticModel, new_classifier
from llm_model.calibration import Calibrator, log_odds
from llm_model.manifest import ModelManifest
from llm_model.model import TrainedModel, for_scoring, model_from_bytes, model_to_bytes
from llm_model.sequences import Features, Snapshot
from llm_model.servable import ServableModel

BOOSTER_KIND = "gbm"
# The booster's log-odds as a static input of the network (never a reason: see
# HybridModel.raw_scores_with_reasons).
BOOSTED_SCORE = "boosted RFM score"
N_FOLDS = 5
NETWORK_MEMBER, BOOSTER_MEMBER = "network.keras", "booster.skops"


def customer_folds(customer_ids: np.ndarray, n_folds: int) -> np.ndarray:
    """A fold per customer (all of their snapshots in one), by a hash independent of the
    validation split's."""
    hashed = pd.util.hash_array(np.asarray(customer_ids, dtype=object), hash_key="boosterfolds0000")
    return (hashed % np.uint64(n_folds)).astype(np.int64)


def out_of_fold_log_odds(train: Snapshot, seed: int, n_folds: int = N_FOLDS) -> np.ndarray:
    """Per training row, the log-odds of a booster fitted on the other folds' customers."""
    fold = customer_folds(train.features.customer_ids, n_folds)
    static, labels = train.features.static, train.labels
    out = np.zeros(len(labels), dtype=np.float32)
    for k in np.unique(fold):
        fit_rows, rows = fold != k, fold == k
        if len(np.unique(labels[fit_rows])) < 2:
            raise ValueError(f"booster fold {k} of {n_folds} holds one class only")
        booster = new_classifier(BOOSTER_KIND, seed).fit(static[fit_rows], labels[fit_rows])
        out[rows] = log_odds(booster.predict_proba(static[rows])[:, 1])
    return out


def with_boosted_score(features: Features, score: np.ndarray) -> Features:
    """The features with the booster's log-odds as their last static column."""
    return Features(
        customer_ids=features.customer_ids,
        tokens=features.tokens,
        numeric=features.numeric,
        static=np.column_stack([features.static, score]).astype(np.float32),
        static_names=(*features.static_names, BOOSTED_SCORE),
    )


def booster_manifest(manifest: ModelManifest) -> ModelManifest:
    """The manifest the inner booster was fitted with, from its hybrid's."""
    return replace(manifest, kind=BOOSTER_KIND, calibrator=Calibrator("identity"), network=None)


@dataclass(frozen=True)
class HybridModel(ServableModel):
    """A recurrent network whose last static input is `booster`'s log-odds, with its
    manifest (the static features are those of the events, without the booster's score)."""

    network: keras.Model
    booster: StaticModel
    manifest: ModelManifest

    @cached_property
    def corrector(self) -> TrainedModel:
        """The network as a recurrent model of the features with the booster's score."""
        names = (*self.manifest.static_names, BOOSTED_SCORE)
        return TrainedModel(self.network, replace(self.manifest, static_names=names))

    def with_boosted_score(self, features: Features) -> Features:
        return with_boosted_score(features, log_odds(self.booster.raw_scores(features)))

    def raw_scores(self, features: Features) -> np.ndarray:
        return self.corrector.raw_scores(self.with_boosted_score(features))

    def raw_scores_with_reasons(self, features: Features) -> tuple[np.ndarray, pd.DataFrame]:
        """Gradient x input of the network, the boosted score's share explained by the
        booster's own features: the network's gradient with respect to the boosted score
        times each feature's occlusion contribution to it, added to the network's own
        contribution of that feature. "boosted RFM score" says nothing a campaign can act
        on; "3 add_to_cart in last 7 days" does."""
        boosted = self.booster.raw_scores(features)
        attribution = self.corrector.attribute(with_boosted_score(features, log_odds(boosted)))
        through_booster = attribution.static_gradient[:, -1:] * self.booster.contributions(
            features.static, boosted
        )
        static = attribution.static[:, :-1] + through_booster
        return attribution.scores, network_reasons(
            attribution, static, features.static, self.manifest
        )

    def to_bytes(self) -> bytes:
        return pack(
            {
                NETWORK_MEMBER: model_to_bytes(self.network),
                BOOSTER_MEMBER: self.booster.to_bytes(),
            }
        )

    @classmethod
    def from_artifact(cls, artifact: bytes, manifest: ModelManifest) -> "HybridModel":
        members = unpack(artifact, (NETWORK_MEMBER, BOOSTER_MEMBER), manifest.kind)
        return cls(
            network=for_scoring(model_from_bytes(members[NETWORK_MEMBER])),
            booster=StaticModel.from_artifact(members[BOOSTER_MEMBER], booster_manifest(manifest)),
            manifest=manifest,
        )

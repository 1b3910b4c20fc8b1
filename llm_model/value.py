"""What a customer is worth in the horizon: the expected sum of their target events'
amounts, beside the probability that they buy.

The value contenders are trained on the same snapshots as the propensity contenders, on the
spend realized in each snapshot's label window:
- two_stage: the served propensity times the spend given a purchase (gradient boosting with
  a gamma loss on the static features, fitted on the rows that spent);
- gbm_poisson: gradient boosting on the spend itself, with a Poisson loss (the Tweedie
  family's member for a sum of purchases; it predicts 0-inflated means directly);
- ziln: the recurrent network with a zero-inflated lognormal head (llm_model.ziln), which
  reads the event sequence too.
Each is judged on the level of the newest labelled period: its predictions are scaled so
that their total on the holdout half that chooses the calibrators equals the spend realized
there (spend drifts between periods as the base rate does, and a sum over customers shows
every bias at once). The best by normalised Gini on the other holdout half's realized spend
(ties by mean absolute error) rides with its propensity model in one model version
(ValuedModel): one artifact, one sha256, one signature, scaled to the level forecast for the
window after the data cutoff (llm_model.level).
"""

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd
import skops.io
from sklearn.ensemble import HistGradientBoostingRegressor

from llm_model.archive import pack, unpack
from llm_model.baselines import load_skops
from llm_model.manifest import ModelManifest
from llm_model.metrics import value_summary
from llm_model.selection import CHAMPION, Evaluation
from llm_model.sequences import Features, Snapshot
from llm_model.servable import ServableModel

STATIC_VALUE_KINDS = ("two_stage", "gbm_poisson")
ZILN = "ziln"
VALUE_KINDS = (*STATIC_VALUE_KINDS, ZILN)
# Fewer spending rows than this teach a spend model nothing it can be trusted with.
MIN_SPENDERS = 20
# Drivers the model card lists.
N_DRIVERS = 5
PROPENSITY_MEMBER, VALUE_MEMBER = "propensity.model", "value.model"


class ValueModel(Protocol):
    """What every value model does: expected spend per customer, and its bytes."""

    kind: str

    def expected_value(self, features: Features, propensity: np.ndarray) -> np.ndarray: ...

    def to_bytes(self) -> bytes: ...


def new_regressor(kind: str, seed: int) -> HistGradientBoostingRegressor:
    if kind not in STATIC_VALUE_KINDS:
        raise ValueError(
            f"unknown static value model kind {kind!r}; expected one of {STATIC_VALUE_KINDS}"
        )
    return HistGradientBoostingRegressor(
        loss="gamma" if kind == "two_stage" else "poisson",
        max_iter=200,
        learning_rate=0.05,
        early_stopping=True,
        random_state=seed,
    )


@dataclass(frozen=True)
class StaticValueModel:
    """A fitted value model of `kind` on the static features."""

    kind: str
    regressor: HistGradientBoostingRegressor

    def expected_value(self, features: Features, propensity: np.ndarray) -> np.ndarray:
        """Per customer, the expected spend in the horizon (never below 0); `propensity` is
        the served probability of a purchase, which the two-stage model multiplies."""
        predicted = self.regressor.predict(features.static)
        if self.kind == "two_stage":
            predicted = np.asarray(propensity, dtype=float) * predicted
        return np.maximum(predicted, 0.0)

    def to_bytes(self) -> bytes:
        return skops.io.dumps(self.regressor)


def load_value_model(kind: str, artifact: bytes, max_len: int) -> ValueModel:
    """A registered value model of `kind`; the network's inputs are `max_len` events wide."""
    if kind in STATIC_VALUE_KINDS:
        return StaticValueModel(kind, load_skops(artifact, f"{kind} value model"))
    if kind == ZILN:
        from llm_model.model import for_scoring, model_from_bytes
        from llm_model.ziln import ZilnValueModel

        return ZilnValueModel(for_scoring(model_from_bytes(artifact)), max_len)
    raise ValueError(
        f"value model kind {kind!r} is unknown to this version of the service (it serves "
        f"{', '.join(VALUE_KINDS)})"
    )


def require_spenders(train: Snapshot) -> np.ndarray:
    """The training rows that spent in their label window; too few to learn from (or no
    spend at all) is a ValueError saying so."""
    if train.values is None:
        raise ValueError("the training snapshots carry no spend")
    spent = train.values > 0
    if spent.sum() < MIN_SPENDERS:
        raise ValueError(
            f"{int(spent.sum())} training rows with spend in their label window (at least "
            f"{MIN_SPENDERS} needed): no amounts on the target events?"
        )
    return spent


def fit_value_model(kind: str, train: Snapshot, seed: int) -> StaticValueModel:
    """A value model of `kind` on the training snapshots' static features and spend."""
    spend, spent = train.values, require_spenders(train)
    static = train.features.static
    if kind == "two_stage":
        regressor = new_regressor(kind, seed).fit(static[spent], spend[spent])
    else:
        regressor = new_regressor(kind, seed).fit(static, spend)
    return StaticValueModel(kind, regressor)


@dataclass(frozen=True)
class ValueContenders:
    models: dict[str, ValueModel]
    failures: dict[str, str]


def fit_value_contenders(train: Snapshot, seed: int) -> ValueContenders:
    """Every static value kind on the same snapshots; one that cannot be trained is
    reported."""
    models, failures = {}, {}
    for kind in STATIC_VALUE_KINDS:
        try:
            models[kind] = fit_value_model(kind, train, seed)
        except ValueError as error:
            failures[kind] = str(error)
    return ValueContenders(models, failures)


def scale_to(total: float, model: ValueModel, features: Features, propensity: np.ndarray) -> float:
    """The factor that makes the model's total expected value of these customers (with the
    served model's probabilities of them) equal `total`; 1 where either total is 0."""
    predicted = float(model.expected_value(features, propensity).sum())
    return total / predicted if predicted > 0 and total > 0 else 1.0


def level_scale(model: ValueModel, judge: Snapshot, propensity: np.ndarray) -> float:
    """The factor that puts the model on `judge`'s level (the holdout half that chooses the
    calibrators): its total there equals the spend realized there. The holdout is judged
    at this level; the served model is put on the forecast one (llm_model.level)."""
    return scale_to(float(judge.values.sum()), model, judge.features, propensity)


def evaluate_values(
    models: dict[str, ValueModel],
    holdout: Snapshot,
    propensity: np.ndarray,
    champion_values: np.ndarray | None = None,
    scales: dict[str, float] | None = None,
) -> Evaluation:
    """Every value model on the holdout's realized spend, the two-stage one multiplying
    `propensity` (the served model's holdout probabilities), each times its level scale,
    beside the champion's expected values of the same customers; ranked by normalised Gini,
    ties by mean absolute error."""
    scales = scales or {}
    predicted = {
        kind: model.expected_value(holdout.features, propensity) * scales.get(kind, 1.0)
        for kind, model in models.items()
    }
    if champion_values is not None:
        predicted[CHAMPION] = champion_values
    table = {name: value_summary(holdout.values, values) for name, values in predicted.items()}
    return Evaluation(
        table=table,
        contenders=tuple(models),
        scores=predicted,
        tie_breaker="mae",
    )


def global_drivers(
    model: ValueModel, features: Features, propensity: np.ndarray
) -> dict[str, float]:
    """The value model's strongest drivers: per static feature, how far a customer's expected
    value moves on average (in the amount's units) when that feature is set to its mean."""
    base = model.expected_value(features, propensity)
    moved = {}
    for column, name in enumerate(features.static_names):
        static = features.static.copy()
        static[:, column] = static[:, column].mean()
        occluded = replace(features, static=static)
        moved[name] = float(np.mean(np.abs(base - model.expected_value(occluded, propensity))))
    strongest = sorted(moved.items(), key=lambda item: -item[1])[:N_DRIVERS]
    return dict(strongest)


@dataclass(frozen=True)
class ValuedModel(ServableModel):
    """A propensity model of any kind with the value model that rides with it: its scores
    carry expected_value beside the propensity. The manifest is the propensity model's, with
    the value model's kind."""

    propensity_model: ServableModel
    value: ValueModel
    manifest: ModelManifest

    @classmethod
    def of(cls, model: ServableModel, value: ValueModel, scale: float = 1.0) -> "ValuedModel":
        manifest = replace(model.manifest, value_kind=value.kind, value_scale=scale)
        return cls(model, value, manifest)

    def raw_scores(self, features: Features) -> np.ndarray:
        return self.propensity_model.raw_scores(features)

    def raw_scores_with_reasons(self, features: Features) -> tuple[np.ndarray, pd.DataFrame]:
        return self.propensity_model.raw_scores_with_reasons(features)

    def scores(self, features: Features, with_reasons: bool) -> pd.DataFrame:
        frame = super().scores(features, with_reasons)
        expected = self.value.expected_value(features, frame["propensity"].to_numpy())
        frame["expected_value"] = expected * self.manifest.value_scale
        return frame

    def to_bytes(self) -> bytes:
        return pack(
            {
                PROPENSITY_MEMBER: self.propensity_model.to_bytes(),
                VALUE_MEMBER: self.value.to_bytes(),
            }
        )


def unpack_valued(artifact: bytes, manifest: ModelManifest) -> tuple[bytes, ValueModel]:
    """The propensity model's bytes and the value model of a valued artifact."""
    members = unpack(
        artifact, (PROPENSITY_MEMBER, VALUE_MEMBER), f"{manifest.kind} with a value model"
    )
    value = load_value_model(manifest.value_kind, members[VALUE_MEMBER], manifest.sequence.max_len)
    return members[PROPENSITY_MEMBER], value

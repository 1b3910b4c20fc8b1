"""Post-calibration of raw model scores into probabilities.

A calibrator is fitted on held-out data and judged on a later, separate holdout. Calibration
learnt on an earlier period can make log loss worse when the base rate drifts, so
`choose_calibrator` keeps a fitted map only where it strictly helps on the judge set.

Fitted parameters are stored as plain floats and lists, so a `Calibrator` round-trips through
JSON and no scikit-learn object is ever pickled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit

from llm_model.metrics import as_scores, log_loss, require_both_classes, validated

Method = Literal["isotonic", "platt", "identity"]
METHODS: tuple[Method, ...] = ("isotonic", "platt", "identity")
# Calibrated probabilities stay this far from 0 and 1 so that log loss on later data, where a
# "certain" bin can be wrong, stays finite; raw scores are clipped likewise before logit().
EPS = 1e-6


def log_odds(p: np.ndarray) -> np.ndarray:
    """The log-odds of probabilities kept EPS away from 0 and 1, so they stay finite."""
    return logit(np.clip(p, EPS, 1 - EPS))


@dataclass
class Calibrator:
    """A fitted map from raw scores in [0, 1] to probabilities.

    Attributes:
        method: which map `transform` applies.
        x_thresholds, y_thresholds: isotonic knots (raw score -> probability), interpolated
            linearly and held constant beyond the first and last knot.
        slope, intercept: Platt parameters, p' = sigmoid(slope * logit(p) + intercept).
    """

    method: Method
    x_thresholds: list[float] = field(default_factory=list)
    y_thresholds: list[float] = field(default_factory=list)
    slope: float = 1.0
    intercept: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(
                f"unknown calibration method {self.method!r}, expected one of {METHODS}"
            )
        # Accept numpy arrays and scalars, keep plain Python floats so to_dict() is JSON-ready.
        self.x_thresholds = [float(v) for v in self.x_thresholds]
        self.y_thresholds = [float(v) for v in self.y_thresholds]
        self.slope = float(self.slope)
        self.intercept = float(self.intercept)
        if self.method == "isotonic":
            if not self.x_thresholds or len(self.x_thresholds) != len(self.y_thresholds):
                raise ValueError("isotonic calibrator needs equally long, non-empty thresholds")
            # np.interp silently returns garbage for unsorted knots.
            if np.any(np.diff(self.x_thresholds) < 0):
                raise ValueError("isotonic x_thresholds must be sorted in increasing order")

    def transform(self, p: ArrayLike) -> np.ndarray:
        """Calibrated probabilities, clipped to [1e-6, 1 - 1e-6]."""
        p = as_scores(p, probabilities=True)
        if self.method == "isotonic":
            calibrated = np.interp(p, self.x_thresholds, self.y_thresholds)
        elif self.method == "platt":
            calibrated = expit(self.slope * log_odds(p) + self.intercept)
        else:
            calibrated = p
        return np.clip(calibrated, EPS, 1 - EPS)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown Calibrator fields: {sorted(unknown)}")
        return cls(**d)


def fit_calibrator(y: ArrayLike, p: ArrayLike, method: Method) -> Calibrator:
    """Fits `method` to map raw scores p onto binary outcomes y."""
    # scikit-learn loads only where a calibrator is fitted: reading a stored one (the model
    # card, every command that reads settings) needs none of it.
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    y, p = validated(y, p, probabilities=True)
    require_both_classes(y, "calibration")
    if method == "isotonic":
        iso = IsotonicRegression().fit(p, y)
        return Calibrator(method, x_thresholds=iso.X_thresholds_, y_thresholds=iso.y_thresholds_)
    if method == "platt":
        # The default mild L2 penalty is negligible at calibration sample sizes but keeps the
        # slope finite when the fit set happens to be perfectly separable.
        lr = LogisticRegression().fit(log_odds(p)[:, np.newaxis], y)
        return Calibrator(method, slope=lr.coef_[0, 0], intercept=lr.intercept_[0])
    # "identity" needs no fitting; Calibrator rejects unknown methods.
    return Calibrator(method)


def choose_calibrator(
    y_fit: ArrayLike,
    p_fit: ArrayLike,
    y_judge: ArrayLike,
    p_judge: ArrayLike,
    methods: Sequence[Method] = ("isotonic", "platt"),
) -> tuple[Calibrator, dict[str, float]]:
    """Fits each method on the fit set and keeps the one with the lowest judge-set log loss.

    Identity wins unless a fitted method strictly improves on it; among equal losses the
    earlier method in `methods` wins.

    Returns:
        The chosen calibrator and {method: log loss on the judge set}, identity included.
    """
    best = Calibrator("identity")
    report = {"identity": log_loss(y_judge, best.transform(p_judge))}
    for method in methods:
        candidate = fit_calibrator(y_fit, p_fit, method)
        report[method] = log_loss(y_judge, candidate.transform(p_judge))
        if report[method] < report[best.method]:
            best = candidate
    return best, report

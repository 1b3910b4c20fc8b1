"""Evaluation metrics for purchase-propensity scores.

Small pure functions over 1-D arrays of binary labels and scores. Every model and baseline is
reported with `summary`; the tables feed the reliability and lift/gain charts. Ranking metrics
are implemented here (not delegated to scikit-learn) so the tests can use scikit-learn as an
independent reference.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

# The figures every contender, champion and judged score run is reported with, in the order
# tables show them; any of them may choose the champion (PROPENSITY_SELECTION_METRIC).
MetricName = Literal["roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift"]
METRIC_NAMES: tuple[MetricName, ...] = get_args(MetricName)
# Where a lower value is better; for the others higher is better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "mae"})
N_DECILES = 10
# Same order of magnitude as scikit-learn's clipping, so one confidently wrong prediction costs
# about 34.5 nats instead of making the mean loss infinite.
LOG_LOSS_EPS = 1e-15

DECILE_COLUMNS = [
    "decile",
    "count",
    "positives",
    "rate",
    "mean_score",
    "lift",
    "cumulative_gain",
    "cumulative_lift",
]


def as_scores(values: ArrayLike, *, probabilities: bool) -> np.ndarray:
    """Validates scores (or probabilities, which must also lie in [0, 1]) as a float array."""
    s = np.asarray(values, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D array, got shape {s.shape}")
    if s.size == 0:
        raise ValueError("empty input: at least one score is required")
    n_nan = int(np.isnan(s).sum())
    if n_nan:
        raise ValueError(f"scores contain {n_nan} NaN value(s)")
    if probabilities and ((s < 0) | (s > 1)).any():
        raise ValueError(f"probabilities must lie in [0, 1], got values in [{s.min()}, {s.max()}]")
    return s


def validated(
    y_true: ArrayLike, values: ArrayLike, *, probabilities: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (labels as int64, scores as float64) after checking shape, labels and NaNs."""
    y = np.asarray(y_true)
    s = as_scores(values, probabilities=probabilities)
    if y.shape != s.shape:
        raise ValueError(f"length mismatch: y_true has shape {y.shape}, scores have {s.shape}")
    valid = np.isin(y, (0, 1))
    if not valid.all():
        raise ValueError(f"labels must be 0 or 1, got e.g. {np.unique(y[~valid])[:5].tolist()}")
    return y.astype(np.int64), s


def require_both_classes(y: np.ndarray, what: str) -> None:
    if y.min() == y.max():
        raise ValueError(f"{what} is undefined: y_true contains only one class ({y[0]})")


def _require_positives(y: np.ndarray, what: str) -> None:
    if not y.any():
        raise ValueError(f"{what} is undefined: y_true contains no positives")


def _threshold_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives captured and customers contacted at each distinct score, highest first.

    Only the end of each run of tied scores is a valid cut-off: a threshold contacts all tied
    customers or none, so ranking metrics do not depend on the input order of ties.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    positives = np.cumsum(y[order])[last_of_tie]
    contacted = np.flatnonzero(last_of_tie) + 1
    return positives, contacted


def roc_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve; tied scores count as half-correct pairs."""
    y, s = validated(y_true, y_score, probabilities=False)
    require_both_classes(y, "ROC AUC")
    positives, contacted = _threshold_counts(y, s)
    tpr = np.r_[0.0, positives / positives[-1]]
    negatives = contacted - positives
    fpr = np.r_[0.0, negatives / negatives[-1]]
    return float(np.trapezoid(tpr, fpr))


def pr_auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Average precision: precision at each threshold weighted by the recall it adds.

    Step-wise rather than trapezoidal, since linear interpolation in PR space is optimistic.
    """
    y, s = validated(y_true, y_score, probabilities=False)
    require_both_classes(y, "PR AUC")
    positives, contacted = _threshold_counts(y, s)
    recall_gain = np.diff(np.r_[0, positives]) / positives[-1]
    return float(np.sum(recall_gain * positives / contacted))


def log_loss(y_true: ArrayLike, p: ArrayLike) -> float:
    """Mean negative log-likelihood in nats, with p clipped to [1e-15, 1 - 1e-15]."""
    y, p = validated(y_true, p, probabilities=True)
    p = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def brier(y_true: ArrayLike, p: ArrayLike) -> float:
    """Mean squared error between probabilities and labels."""
    y, p = validated(y_true, p, probabilities=True)
    return float(np.mean((p - y) ** 2))


def calibration_curve(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table over equal-width probability bins.

    Bin b covers [b / n_bins, (b + 1) / n_bins), the last bin also includes 1.0. Empty bins are
    omitted because they have no observed rate.

    Returns:
        Columns bin, mean_predicted, observed_rate, count; one row per non-empty bin, by bin.
    """
    y, p = validated(y_true, p, probabilities=True)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    return (
        pd.DataFrame({"bin": bins, "p": p, "y": y})
        .groupby("bin", as_index=False)
        .agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size"))
    )


def expected_calibration_error(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Mean |predicted - observed| over equal-width bins, weighted by bin count."""
    curve = calibration_curve(y_true, p, n_bins)
    gap = np.abs(curve["mean_predicted"] - curve["observed_rate"])
    return float(np.average(gap, weights=curve["count"]))


def decile_table(y_true: ArrayLike, y_score: ArrayLike) -> pd.DataFrame:
    """Customers ranked by score and cut into ten equal groups; decile 1 has the highest scores.

    Tied scores are split by input order, so deciles differ in size by at most one customer and
    the same input always gives the same table.

    Returns:
        Columns decile, count, positives, rate, mean_score, lift (rate / overall rate),
        cumulative_gain (share of all positives in deciles 1..d) and cumulative_lift.
    """
    y, s = validated(y_true, y_score, probabilities=False)
    n = y.size
    if n < N_DECILES:
        raise ValueError(f"decile table needs at least {N_DECILES} rows, got {n}")
    _require_positives(y, "lift")
    order = np.argsort(-s, kind="stable")
    table = (
        pd.DataFrame({"decile": np.arange(n) * N_DECILES // n + 1, "y": y[order], "s": s[order]})
        .groupby("decile", as_index=False)
        .agg(count=("y", "size"), positives=("y", "sum"), mean_score=("s", "mean"))
    )
    total_positives = table["positives"].sum()
    table["rate"] = table["positives"] / table["count"]
    table["lift"] = table["rate"] / (total_positives / n)
    table["cumulative_gain"] = table["positives"].cumsum() / total_positives
    table["cumulative_lift"] = table["cumulative_gain"] / (table["count"].cumsum() / n)
    return table[DECILE_COLUMNS]


def top_decile_lift(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Positive rate among the top 10% of scores divided by the overall positive rate."""
    return float(decile_table(y_true, y_score)["lift"].iloc[0])


def gini(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Normalised Gini coefficient (accuracy ratio of the cumulative gains curve)."""
    return 2.0 * roc_auc(y_true, y_score) - 1.0


def gains_curve(y_true: ArrayLike, y_score: ArrayLike) -> pd.DataFrame:
    """Share of positives captured when contacting customers from the highest score down.

    Returns:
        Columns share_contacted and share_captured, both from 0 to 1, one row per distinct score
        plus the origin; tied customers are contacted together.
    """
    y, s = validated(y_true, y_score, probabilities=False)
    _require_positives(y, "gains curve")
    positives, contacted = _threshold_counts(y, s)
    return pd.DataFrame(
        {
            "share_contacted": np.r_[0.0, contacted / y.size],
            "share_captured": np.r_[0.0, positives / positives[-1]],
        }
    )


def summary(y_true: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """The standard report for a model or baseline: ranking, probability and lift metrics."""
    y, p = validated(y_true, p, probabilities=True)
    return {
        "roc_auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier(y, p),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": top_decile_lift(y, p),
        "gini": gini(y, p),
        "base_rate": float(y.mean()),
        "n": y.size,
    }


def realized_spend(values: ArrayLike) -> np.ndarray:
    """Validates realized spend per customer: finite, never negative, not all 0."""
    spend = as_scores(values, probabilities=False)
    if (spend < 0).any():
        raise ValueError(f"realized spend must be >= 0, got values down to {spend.min()}")
    if spend.sum() <= 0:
        raise ValueError("no customer spent anything: value metrics are undefined")
    return spend


def _revenue_gains_area(spend: np.ndarray, predicted: np.ndarray) -> float:
    """Area under the revenue-gains curve (share of revenue captured against share of
    customers contacted, highest prediction first); tied predictions are contacted together."""
    order = np.argsort(-predicted, kind="stable")
    ranked = predicted[order]
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    captured = np.r_[0.0, np.cumsum(spend[order])[last_of_tie] / spend.sum()]
    contacted = np.r_[0.0, (np.flatnonzero(last_of_tie) + 1) / spend.size]
    return float(np.trapezoid(captured, contacted))


def value_gini(spend: ArrayLike, predicted: ArrayLike) -> float:
    """Normalised Gini of predicted value on realized spend: the area between the revenue
    gains curve and the diagonal, over the same area when customers are ordered by their
    spend itself. 1 orders them as their spend does, 0 as chance; on 0/1 spend it is the
    2 AUC - 1 of the propensity's gini."""
    y = realized_spend(spend)
    s = as_scores(predicted, probabilities=False)
    if y.shape != s.shape:
        raise ValueError(f"length mismatch: spend has shape {y.shape}, predictions {s.shape}")
    perfect = _revenue_gains_area(y, y) - 0.5
    return float((_revenue_gains_area(y, s) - 0.5) / perfect)


def top_decile_revenue_share(spend: ArrayLike, predicted: ArrayLike) -> float:
    """The share of all realized spend that the tenth of customers with the highest
    predicted value brought (ties split by input order, as in decile_table)."""
    y = realized_spend(spend)
    s = as_scores(predicted, probabilities=False)
    if y.size < N_DECILES:
        raise ValueError(f"a top decile needs at least {N_DECILES} customers, got {y.size}")
    top = np.argsort(-s, kind="stable")[: -(-y.size // N_DECILES)]
    return float(y[top].sum() / y.sum())


# The figures every value contender, value champion and judged score run is reported with.
VALUE_METRIC = "value_gini"


def value_summary(spend: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """How predicted values did against realized spend: normalised Gini (the selection
    metric), mean absolute error, the top decile's share of revenue and the totals."""
    y = realized_spend(spend)
    s = as_scores(predicted, probabilities=False)
    return {
        VALUE_METRIC: value_gini(y, s),
        "mae": float(np.mean(np.abs(s - y))),
        "top_decile_revenue_share": top_decile_revenue_share(y, s),
        "predicted_total": float(s.sum()),
        "realized_total": float(y.sum()),
        "n": y.size,
    }

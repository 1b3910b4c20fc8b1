import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from llm_model import metrics

# Tiny hand-checked example: 20 customers, 5 positives (base rate 0.25), distinct scores.
# In descending score order (1.00, 0.95, ..., 0.05) the positives sit at ranks 1, 2, 3, 7, 14.
SORTED_SCORES = np.arange(20, 0, -1) / 20
SORTED_LABELS = np.zeros(20, dtype=int)
SORTED_LABELS[[0, 1, 2, 6, 13]] = 1
# Shuffle the input so the functions must do the sorting themselves.
_PERM = np.random.default_rng(0).permutation(20)
TINY_SCORES, TINY_LABELS = SORTED_SCORES[_PERM], SORTED_LABELS[_PERM]


def random_case(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities rounded to 2 decimals, so many scores are tied."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(2, 5, n), 2)
    y = (rng.random(n) < p).astype(int)
    return y, p


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn_on_random_data_with_ties(seed):
    y, p = random_case(seed)
    assert metrics.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert metrics.pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert metrics.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert metrics.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)


def test_ranking_metrics_hand_computed():
    # sklearn's documented example: 3 of 4 positive/negative pairs are ordered correctly.
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert metrics.roc_auc(y, s) == pytest.approx(0.75)
    assert metrics.gini(y, s) == pytest.approx(0.5)
    # Precision 1 at recall 0.5, precision 2/3 at recall 1.
    assert metrics.pr_auc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_ranking_metrics_hand_computed_with_ties():
    # The tied pair (positive 0.5, negative 0.5) counts half: (1 + 1 + 0.5 + 1) / 4.
    y, s = [1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1]
    assert metrics.roc_auc(y, s) == pytest.approx(0.875)
    # Thresholds 0.9 (precision 1, recall 0.5) and 0.5 (precision 2/3, recall 1).
    assert metrics.pr_auc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Reordering tied customers must not change ranking metrics.
    assert metrics.roc_auc([0, 1, 1, 0], [0.5, 0.5, 0.9, 0.1]) == pytest.approx(0.875)


def test_probability_metrics_hand_computed():
    y, p = [1, 0], [0.8, 0.4]
    assert metrics.log_loss(y, p) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)
    assert metrics.brier(y, p) == pytest.approx((0.2**2 + 0.4**2) / 2)


def test_log_loss_clips_certain_mistakes():
    loss = metrics.log_loss([1, 0], [0.0, 1.0])
    assert np.isfinite(loss)
    # 1 - 1e-15 is not exact in float64, hence the loose tolerance.
    assert loss == pytest.approx(-np.log(1e-15), rel=1e-4)


def test_calibration_curve_and_ece_hand_computed():
    y = [0, 1, 1, 0, 1]
    p = [0.12, 0.18, 0.85, 0.95, 0.55]
    curve = metrics.calibration_curve(y, p, n_bins=2)
    assert list(curve.columns) == ["bin", "mean_predicted", "observed_rate", "count"]
    assert curve["bin"].tolist() == [0, 1]
    np.testing.assert_allclose(curve["mean_predicted"], [0.15, (0.85 + 0.95 + 0.55) / 3])
    np.testing.assert_allclose(curve["observed_rate"], [0.5, 2 / 3])
    assert curve["count"].tolist() == [2, 3]
    # (2 * |0.15 - 0.5| + 3 * |0.78333 - 0.66667|) / 5 = (0.7 + 0.35) / 5
    assert metrics.expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.21)


def test_calibration_curve_skips_empty_bins_and_puts_one_in_last_bin():
    curve = metrics.calibration_curve([0, 1, 1], [0.05, 1.0, 0.95], n_bins=10)
    assert curve["bin"].tolist() == [0, 9]
    assert curve["count"].tolist() == [1, 2]


def test_ece_is_zero_when_perfectly_calibrated_per_bin():
    # Bin [0.2, 0.3): predicted 0.25, 1 of 4 positive. Bin [0.7, 0.8): predicted 0.75, 3 of 4.
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    assert metrics.expected_calibration_error(y, p) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(y, [0.5] * 8) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(y, [0.9] * 8) == pytest.approx(0.4)


def test_decile_table_hand_computed():
    table = metrics.decile_table(TINY_LABELS, TINY_SCORES)
    # Every column, in order, with its hand-computed values.
    expected = pd.DataFrame(
        {
            "decile": range(1, 11),
            "count": [2] * 10,
            "positives": [2, 1, 0, 1, 0, 0, 1, 0, 0, 0],
            "rate": [1, 0.5, 0, 0.5, 0, 0, 0.5, 0, 0, 0],
            "mean_score": [0.975, 0.875, 0.775, 0.675, 0.575, 0.475, 0.375, 0.275, 0.175, 0.075],
            "lift": [4, 2, 0, 2, 0, 0, 2, 0, 0, 0],
            "cumulative_gain": [0.4, 0.6, 0.6, 0.8, 0.8, 0.8, 1, 1, 1, 1],
            # cumulative_gain / share contacted, e.g. decile 6: 0.8 / 0.6, decile 7: 1.0 / 0.7.
            "cumulative_lift": [4, 3, 2, 2, 1.6, 0.8 / 0.6, 1 / 0.7, 1 / 0.8, 1 / 0.9, 1],
        }
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-12, atol=1e-12)
    assert metrics.top_decile_lift(TINY_LABELS, TINY_SCORES) == pytest.approx(4.0)


def test_decile_table_splits_ties_into_equal_deciles_by_input_order():
    y = np.zeros(23, dtype=int)
    y[:3] = 1
    scores = np.full(23, 0.5)
    table = metrics.decile_table(y, scores)
    # 23 rows into 10 deciles: three deciles of 3 and seven of 2.
    assert sorted(table["count"].tolist()) == [2] * 7 + [3] * 3
    assert table["count"].sum() == 23
    # All scores tie, so the first rows in input order form decile 1: all three positives.
    assert table["count"].iloc[0] == 3
    assert table["positives"].iloc[0] == 3
    # Rate 3/3 over base rate 3/23; cumulative lift divides by the 3/23 contacted, not 1/10.
    assert table["lift"].iloc[0] == pytest.approx(23 / 3)
    assert table["cumulative_lift"].iloc[0] == pytest.approx(23 / 3)
    np.testing.assert_allclose(table["cumulative_gain"], 1.0)
    pd.testing.assert_frame_equal(table, metrics.decile_table(y, scores))


def test_decile_table_on_random_data_is_consistent():
    y, p = random_case(1, n=1003)
    table = metrics.decile_table(y, p)
    assert table["count"].max() - table["count"].min() <= 1
    assert table["positives"].sum() == y.sum()
    assert table["mean_score"].is_monotonic_decreasing
    assert table["cumulative_gain"].iloc[-1] == pytest.approx(1.0)
    assert table["cumulative_lift"].iloc[-1] == pytest.approx(1.0)
    # Lift is relative to the base rate, so the count-weighted mean lift is exactly 1.
    assert np.average(table["lift"], weights=table["count"]) == pytest.approx(1.0)


def test_gini_matches_lorenz_curve():
    rng = np.random.default_rng(7)
    s = rng.random(400)  # continuous, so no ties and a unique ordering
    y = (rng.random(400) < s**2).astype(int)
    # Cumulative gains (CAP / Lorenz) curve, contacting customers from the highest score down.
    y_sorted = y[np.argsort(-s)]
    share_contacted = np.arange(len(y) + 1) / len(y)
    share_captured = np.r_[0, np.cumsum(y_sorted)] / y.sum()
    area = np.trapezoid(share_captured, share_contacted)
    base_rate = y.mean()
    # Accuracy ratio: area above the diagonal relative to that of the perfect model.
    perfect_area = 1 - base_rate / 2
    expected = (area - 0.5) / (perfect_area - 0.5)
    assert metrics.gini(y, s) == pytest.approx(expected, abs=1e-12)
    assert metrics.gini(y, s) == pytest.approx(2 * skm.roc_auc_score(y, s) - 1, abs=1e-12)


def test_gains_curve_hand_computed_with_ties():
    curve = metrics.gains_curve([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
    assert list(curve.columns) == ["share_contacted", "share_captured"]
    # The two customers tied at 0.5 are contacted together.
    np.testing.assert_allclose(curve["share_contacted"], [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(curve["share_captured"], [0, 0.5, 1, 1])


def test_gains_curve_hand_computed_tiny():
    curve = metrics.gains_curve(TINY_LABELS, TINY_SCORES)
    np.testing.assert_allclose(curve["share_contacted"], np.arange(21) / 20)
    captured = [0, 1, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5]
    np.testing.assert_allclose(curve["share_captured"], np.array(captured) / 5)


def test_summary_keys_and_values():
    y, p = random_case(3)
    result = metrics.summary(y, p)
    assert list(result) == [
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "ece",
        "top_decile_lift",
        "gini",
        "base_rate",
        "n",
    ]
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert result["gini"] == pytest.approx(2 * result["roc_auc"] - 1)
    assert result["ece"] == pytest.approx(metrics.expected_calibration_error(y, p))
    assert result["top_decile_lift"] == pytest.approx(metrics.top_decile_lift(y, p))
    assert result["base_rate"] == pytest.approx(y.mean())
    assert result["n"] == len(y)
    assert all(isinstance(v, int | float) for v in result.values())


def test_accepts_bool_and_float_labels():
    y, p = random_case(4)
    expected = metrics.roc_auc(y, p)
    assert metrics.roc_auc(y.astype(bool), p) == expected
    assert metrics.roc_auc(y.astype(float), p) == expected


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "length mismatch"),
        ([], [], "empty input"),
        ([0, 2], [0.1, 0.2], "labels must be 0 or 1"),
        ([0, -1], [0.1, 0.2], "labels must be 0 or 1"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([1, 1], [0.1, 0.2], "only one class"),
        ([0, 0], [0.1, 0.2], "only one class"),
    ],
)
@pytest.mark.parametrize("fn", [metrics.roc_auc, metrics.pr_auc, metrics.gini, metrics.summary])
def test_ranking_metrics_reject_bad_input(fn, y, s, message):
    with pytest.raises(ValueError, match=message):
        fn(y, s)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "length mismatch"),
        ([], [], "empty input"),
        ([0, 0.5], [0.1, 0.2], "labels must be 0 or 1"),
        ([0, 1], [np.nan, 0.2], "NaN"),
        ([0, 1], [0.1, 1.2], r"must lie in \[0, 1\]"),
    ],
)
@pytest.mark.parametrize(
    "fn",
    [
        metrics.log_loss,
        metrics.brier,
        metrics.expected_calibration_error,
        metrics.calibration_curve,
    ],
)
def test_probability_metrics_reject_bad_input(fn, y, p, message):
    with pytest.raises(ValueError, match=message):
        fn(y, p)


def test_lift_tables_reject_bad_input():
    with pytest.raises(ValueError, match="no positives"):
        metrics.decile_table(np.zeros(20), np.linspace(0, 1, 20))
    with pytest.raises(ValueError, match="no positives"):
        metrics.gains_curve(np.zeros(5), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="at least 10 rows"):
        metrics.decile_table([0, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        metrics.top_decile_lift([0, 1] * 10, [np.nan] * 20)
    with pytest.raises(ValueError, match="n_bins"):
        metrics.calibration_curve([0, 1], [0.1, 0.2], n_bins=0)

"""Model-card charts: one readable PNG per chart, and the data each figure plots."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy.special import expit
from sklearn.calibration import calibration_curve

from llm_model.charts import (
    curves_figure,
    histogram_figure,
    model_charts,
    monitoring_figure,
    save,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 6 x 4.5 inches at 110 dots per inch.
WIDTH, HEIGHT = 660, 495


@pytest.fixture(scope="module")
def holdout() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """400 labels and two contenders' continuous scores in (0, 1): no ties, none on a bin edge."""
    rng = np.random.default_rng(5)
    labels = (rng.random(400) < 0.2).astype(int)
    informed = expit(2.0 * labels - 1.5 + rng.normal(0, 1.0, 400))
    uninformed = rng.uniform(0, 1, 400)
    # "model" second: model_charts must find the entry it histograms by name.
    return labels, {"recency": uninformed, "model": informed}


def lines_by_label(figure) -> dict:
    return {line.get_label(): line for line in figure.axes[0].get_lines()}


def test_model_charts_writes_one_png_per_chart_into_a_new_folder(holdout, tmp_path):
    labels, scores = holdout
    folder = tmp_path / "reports" / "model-7"

    paths = model_charts(labels, scores, "model", folder)

    assert [path.name for path in paths] == ["gains.png", "calibration.png", "score_histogram.png"]
    assert sorted(folder.iterdir()) == sorted(paths)
    for path in paths:
        assert path.read_bytes().startswith(PNG_MAGIC)
        assert 5_000 < path.stat().st_size < 500_000
        image = imread(path)
        assert image.shape == (HEIGHT, WIDTH, 4)
        assert len(np.unique(image.reshape(-1, 4), axis=0)) > 20, f"{path.name} is nearly blank"
    assert len({path.read_bytes() for path in paths}) == 3
    # The histogram is the one of the contender named `model`, not of another.
    own = save(histogram_figure(scores["model"]), tmp_path / "own.png")
    other = save(histogram_figure(scores["recency"]), tmp_path / "other.png")
    assert imread(paths[2]).tolist() == imread(own).tolist() != imread(other).tolist()


def test_gains_chart_plots_each_contenders_cumulative_gains(holdout):
    labels, scores = holdout

    lines = lines_by_label(curves_figure(labels, scores, "gains"))

    assert list(lines) == ["recency", "model", "random"]
    for name, score in scores.items():
        # Without ties, contacting customers best first captures the running sum of labels.
        order = np.argsort(-score)
        contacted = np.arange(len(score) + 1) / len(score)
        captured = np.r_[0, np.cumsum(labels[order])] / labels.sum()
        np.testing.assert_allclose(lines[name].get_xydata(), np.c_[contacted, captured])
    np.testing.assert_array_equal(lines["random"].get_xydata(), [[0, 0], [1, 1]])


def test_calibration_chart_plots_each_contenders_reliability(holdout):
    labels, scores = holdout

    lines = lines_by_label(curves_figure(labels, scores, "calibration"))

    assert list(lines) == ["recency", "model", "perfect"]
    for name, score in scores.items():
        observed, predicted = calibration_curve(labels, score, n_bins=10, strategy="uniform")
        np.testing.assert_allclose(lines[name].get_xydata(), np.c_[predicted, observed])
        assert lines[name].get_marker() == "o"
    np.testing.assert_array_equal(lines["perfect"].get_xydata(), [[0, 0], [1, 1]])


def test_histogram_counts_every_score_in_forty_bins_over_zero_to_one(holdout):
    _, scores = holdout
    score = np.r_[scores["model"], 0.0, 1.0]

    bars = histogram_figure(score).axes[0].patches

    counts, edges = np.histogram(score, bins=40, range=(0, 1))
    np.testing.assert_array_equal([bar.get_height() for bar in bars], counts)
    np.testing.assert_allclose([bar.get_x() for bar in bars], edges[:-1], atol=1e-12)
    assert sum(bar.get_height() for bar in bars) == len(score)


def test_monitoring_chart_plots_realized_auc_and_conversions_by_as_of():
    history = pd.DataFrame(
        {
            "as_of": pd.to_datetime(["2026-05-01", "2026-06-01", "2026-07-01"]),
            "roc_auc": [0.8, np.nan, 0.7],
            "holdout_roc_auc": [0.75, 0.75, 0.72],
            "expected": [10.5, 12.0, 9.25],
            "actual": [9, 14, 8],
            "expected_revenue": [np.nan] * 3,
            "actual_revenue": [np.nan] * 3,
        }
    )
    # Runs published without values draw no revenue panel.
    auc, conversions = monitoring_figure(history).axes
    realized, holdout, random = auc.get_lines()
    assert list(random.get_ydata()) == [0.5, 0.5]
    # Counts are drawn from zero: the gap between expected and actual reads true.
    assert conversions.get_ylim()[0] == 0
    assert realized.get_ydata().tolist()[::2] == [0.8, 0.7]
    assert np.isnan(realized.get_ydata()[1])
    assert holdout.get_ydata().tolist() == [0.75, 0.75, 0.72]
    assert [line.get_label() for line in conversions.get_lines()] == ["expected", "actual"]
    assert [line.get_ydata().tolist() for line in conversions.get_lines()] == [
        [10.5, 12.0, 9.25],
        [9, 14, 8],
    ]


def test_monitoring_chart_adds_expected_and_actual_revenue_from_zero():
    history = pd.DataFrame(
        {
            "as_of": pd.to_datetime(["2026-05-01", "2026-06-01"]),
            "roc_auc": [0.8, 0.7],
            "holdout_roc_auc": [0.75, 0.72],
            "expected": [10.5, 12.0],
            "actual": [9, 14],
            "expected_revenue": [np.nan, 1_250.0],
            "actual_revenue": [np.nan, 1_100.0],
        }
    )
    *_, revenue = monitoring_figure(history).axes
    assert revenue.get_ylim()[0] == 0
    assert [line.get_label() for line in revenue.get_lines()] == ["expected", "actual"]
    assert [line.get_ydata().tolist()[1] for line in revenue.get_lines()] == [1_250.0, 1_100.0]

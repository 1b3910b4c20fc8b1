"""PNG charts for the model card: cumulative gains, reliability and the score histogram.

Uses matplotlib's object API (no pyplot, no display): safe in workers and threads.
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from llm_model import metrics


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def curves_chart(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    reference: str,
    labels: dict[str, str],
    path: Path,
    marker: str | None = None,
) -> Path:
    """One line per contender plus the diagonal as `reference` (random, perfect)."""
    figure = Figure(figsize=(6, 4.5))
    axes = figure.subplots()
    for name, (x, y) in curves.items():
        axes.plot(x, y, marker=marker, label=name)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label=reference)
    axes.set(**labels)
    axes.legend(loc="best")
    return _save(figure, path)


def gains_chart(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    curves = {}
    for name, score in scores.items():
        gains = metrics.gains_curve(labels, score)
        curves[name] = (gains["share_contacted"], gains["share_captured"])
    titles = {
        "xlabel": "share of customers contacted (best first)",
        "ylabel": "share of conversions captured",
        "title": "Cumulative gains on the holdout",
    }
    return curves_chart(curves, "random", titles, path)


def calibration_chart(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    curves = {}
    for name, score in scores.items():
        reliability = metrics.calibration_curve(labels, score)
        curves[name] = (reliability["mean_predicted"], reliability["observed_rate"])
    titles = {
        "xlabel": "predicted propensity",
        "ylabel": "observed conversion rate",
        "title": "Reliability on the holdout",
    }
    return curves_chart(curves, "perfect", titles, path, marker="o")


def histogram_chart(score: np.ndarray, path: Path) -> Path:
    figure = Figure(figsize=(6, 4.5))
    axes = figure.subplots()
    axes.hist(score, bins=40, range=(0, 1), color="tab:blue")
    axes.set(xlabel="propensity", ylabel="customers", title="Score distribution (holdout)")
    return _save(figure, path)


def model_charts(
    labels: np.ndarray, scores: dict[str, np.ndarray], model: str, folder: Path
) -> list[Path]:
    """All charts of one model card; `model` names the entry of `scores` to histogram."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        gains_chart(labels, scores, folder / "gains.png"),
        calibration_chart(labels, scores, folder / "calibration.png"),
        histogram_chart(scores[model], folder / "score_histogram.png"),
    ]

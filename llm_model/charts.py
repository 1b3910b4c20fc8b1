"""PNG charts for the model card (cumulative gains, reliability, the score histogram) and
for monitoring (score runs judged over time).

Uses matplotlib's object API (no pyplot, no display): safe in workers and threads. Each chart
is built as a Figure (whose plotted data can be read back) and saved by ``model_charts``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from llm_model import metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGSIZE = (6, 4.5)
DPI = 110
HISTOGRAM_BINS = 40
# Per curve chart: the metrics table per contender, its x and y columns, the name of the
# diagonal (what a random ranking or a perfectly calibrated model draws) and the line marker.
CURVES = {
    "gains": (metrics.gains_curve, "share_contacted", "share_captured", "random", None),
    "calibration": (metrics.calibration_curve, "mean_predicted", "observed_rate", "perfect", "o"),
}
TITLES = {
    "gains": {
        "xlabel": "share of customers contacted (best first)",
        "ylabel": "share of conversions captured",
        "title": "Cumulative gains on the holdout",
    },
    "calibration": {
        "xlabel": "predicted propensity",
        "ylabel": "observed conversion rate",
        "title": "Reliability on the holdout",
    },
}


def new_figure(figsize: tuple[float, float]) -> Figure:
    # matplotlib loads where a chart is drawn, not with every module that can draw one.
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def png(figure: Figure) -> bytes:
    """The chart as PNG bytes, for a file or a page that carries its images."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save(figure: Figure, path: Path) -> Path:
    path.write_bytes(png(figure))
    return path


def curves_figure(labels: np.ndarray, scores: dict[str, np.ndarray], chart: str) -> Figure:
    """The ``CURVES`` entry ``chart``: one line per contender in ``scores``, then the diagonal."""
    curve, x, y, reference, marker = CURVES[chart]
    figure = new_figure(FIGSIZE)
    axes = figure.subplots()
    for name, score in scores.items():
        table = curve(labels, score)
        axes.plot(table[x], table[y], marker=marker, label=name)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label=reference)
    axes.set(**TITLES[chart])
    axes.legend(loc="best")
    return figure


def histogram_figure(score: np.ndarray) -> Figure:
    figure = new_figure(FIGSIZE)
    axes = figure.subplots()
    axes.hist(score, bins=HISTOGRAM_BINS, range=(0, 1), color="tab:blue")
    axes.set(xlabel="propensity", ylabel="customers", title="Score distribution (holdout)")
    return figure


def model_charts(
    labels: np.ndarray, scores: dict[str, np.ndarray], model: str, folder: Path
) -> list[Path]:
    """All charts of one model card; `model` names the entry of `scores` to histogram."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {f"{chart}.png": curves_figure(labels, scores, chart) for chart in CURVES}
    figures["score_histogram.png"] = histogram_figure(scores[model])
    return [save(figure, folder / name) for name, figure in figures.items()]


def monitoring_figure(history: pd.DataFrame) -> Figure:
    """Score runs over time (`history`: one row per run with as_of, roc_auc, holdout_roc_auc,
    expected and actual conversions): realized against holdout AUC, and expected against
    actual conversions."""
    figure = new_figure((FIGSIZE[0] * 2, FIGSIZE[1]))
    auc, conversions = figure.subplots(1, 2)
    auc.plot(history["as_of"], history["roc_auc"], marker="o", label="realized")
    auc.plot(history["as_of"], history["holdout_roc_auc"], "s--", label="model's holdout")
    auc.set(xlabel="scored as of", ylabel="ROC AUC", title="Realized AUC of each score run")
    conversions.plot(history["as_of"], history["expected"], marker="o", label="expected")
    conversions.plot(history["as_of"], history["actual"], marker="s", label="actual")
    conversions.set(
        xlabel="scored as of", ylabel="conversions", title="Expected and actual conversions"
    )
    for axes in (auc, conversions):
        axes.legend(loc="best")
        axes.tick_params(axis="x", labelrotation=30)
    return figure

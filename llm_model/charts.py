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
from llm_model.kinds import STATIC_KINDS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE = (6, 4.5)
DPI = 110
HISTOGRAM_BINS = 40
# Fifty runs' markers must not hide their lines.
MARKER_SIZE = 4
# The time axis reaches this far beyond the first and last run, or a twentieth of their span
# where that is more: one run gets a fortnight around it, not matplotlib's years.
RUN_MARGIN = pd.Timedelta(days=7)
# A random ranking's AUC: the AUC axis shows how far above it each run is.
RANDOM_AUC = 0.5
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


def charted(scores: dict[str, np.ndarray], model: str) -> dict[str, np.ndarray]:
    """What the curve charts draw: the registered contender `model`, labelled so, and the
    baselines it has to beat (logistic regression, gradient boosting). The other contenders,
    raw scores and references stay in the card's table: seven lines in one chart read as
    none at a glance."""
    shown = {f"{model} (registered)": scores[model]}
    shown |= {kind: scores[kind] for kind in STATIC_KINDS if kind in scores and kind != model}
    return shown


def model_charts(
    labels: np.ndarray, scores: dict[str, np.ndarray], model: str, folder: Path
) -> list[Path]:
    """All charts of one model card; `model` names the registered entry of `scores`."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = charted(scores, model)
    figures = {f"{chart}.png": curves_figure(labels, shown, chart) for chart in CURVES}
    figures["score_histogram.png"] = histogram_figure(scores[model])
    return [save(figure, folder / name) for name, figure in figures.items()]


def monitoring_figure(history: pd.DataFrame) -> Figure:
    """Score runs over time (`history`: one row per run with as_of, roc_auc, holdout_roc_auc,
    expected and actual conversions, and expected_revenue and actual_revenue, NaN for runs
    published without values): realized against holdout AUC, and expected against actual
    conversions and revenue counted from zero, so that the gap between them reads true."""
    history = history.sort_values("as_of", kind="stable")
    with_revenue = history["expected_revenue"].notna().any()
    panels = 3 if with_revenue else 2
    figure = new_figure((FIGSIZE[0] * panels, FIGSIZE[1]))
    auc, conversions, *revenue = figure.subplots(1, panels)
    as_of = history["as_of"]
    auc.plot(as_of, history["roc_auc"], marker="o", markersize=MARKER_SIZE, label="realized")
    auc.plot(
        as_of, history["holdout_roc_auc"], "s--", markersize=MARKER_SIZE, label="model's holdout"
    )
    auc.axhline(RANDOM_AUC, color="grey", linestyle=":", label="random")
    lowest = np.nanmin([RANDOM_AUC, *history["roc_auc"], *history["holdout_roc_auc"]])
    auc.set_ylim(lowest - 0.05, 1)
    auc.set(ylabel="ROC AUC", title="Realized AUC of each score run")
    conversions.plot(
        as_of, history["expected"], marker="o", markersize=MARKER_SIZE, label="expected"
    )
    conversions.plot(as_of, history["actual"], marker="s", markersize=MARKER_SIZE, label="actual")
    highest = np.nanmax([1, *history["expected"], *history["actual"]])
    conversions.set_ylim(0, highest * 1.1)
    conversions.set(ylabel="conversions", title="Expected and actual conversions")
    for axes in revenue:
        for column, marker in (("expected_revenue", "o"), ("actual_revenue", "s")):
            label = column.removesuffix("_revenue")
            axes.plot(as_of, history[column], marker=marker, markersize=MARKER_SIZE, label=label)
        highest = np.nanmax([1, *history["expected_revenue"], *history["actual_revenue"]])
        axes.set_ylim(0, highest * 1.1)
        axes.set(ylabel="revenue", title="Expected and actual revenue")
    for axes in (auc, conversions, *revenue):
        runs_time_axis(axes, as_of)
        axes.legend(loc="best")
    return figure


def runs_time_axis(axes: Axes, as_of: pd.Series) -> None:
    """The runs' dates, from just before the first to just after the last, labelled
    concisely (a year once, then months and days)."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    first, last = pd.Timestamp(as_of.min()), pd.Timestamp(as_of.max())
    margin = max((last - first) / 20, RUN_MARGIN)
    axes.set_xlim(first - margin, last + margin)
    locator = AutoDateLocator(maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_xlabel("scored as of")

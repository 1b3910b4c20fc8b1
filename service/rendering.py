"""What people read about models and runs: every table once, as a TextTable the CLI prints
on the terminal and Prefect artifacts hold as Markdown; the model card; the charts of
judged runs."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from db.models import ModelVersion
from db.outcomes import EvaluatedRun
from llm_model.charts import monitoring_figure
from llm_model.drift import GROWS_WITH_TIME
from llm_model.level import Level
from llm_model.manifest import ModelManifest, ModelMetrics, TrainingData, ValueMetrics
from llm_model.metrics import METRIC_NAMES
from llm_model.monitoring import RealizedOutcome
from service.pseudonyms import BY_ID, CustomerNames
from service.registry import manifest_of, metrics_of
from service.results import (
    Backtest,
    BacktestRow,
    DriftCheck,
    RetrainOutcome,
    RunDriftCheck,
    RunEvaluation,
    ScoreSummary,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Control characters (C0, DEL, C1) shown as escapes: an id or event type holding ESC must not
# drive the terminal, and a newline must not split a table row.
CONTROL_CHARACTERS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
# What Markdown (CommonMark, GitHub's tables) reads as structure: links, images, HTML,
# emphasis, code, table cells.
MARKDOWN_SPECIALS = "\\`*_[]()!<>|~&"


def printable(text: str) -> str:
    """The text with its control characters written out as escapes."""
    return text.translate(CONTROL_CHARACTERS)


def markdown_text(text: str) -> str:
    """The text shown as itself in Markdown: printable, and each character Markdown would
    read as structure escaped."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIALS else c for c in printable(text))


@dataclass(frozen=True)
class TextTable:
    """A table whose cells are plain text, whoever wrote it (ids and event types included):
    each renderer makes it inert for its medium."""

    title: str
    header: tuple[str, ...]
    rows: list[list[str]]

    def markdown(self) -> str:
        def line(cells) -> str:
            return "| " + " | ".join(markdown_text(cell) for cell in cells) + " |"

        return "\n".join(
            [line(self.header), "|" + "---|" * len(self.header), *map(line, self.rows)]
        )


def figure(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


# --- retrains --------------------------------------------------------------------------


def retrain_decision(outcome: RetrainOutcome) -> str:
    return (
        f"model version {outcome.version_id} ({outcome.kind}): {outcome.status} — {outcome.reason}"
    )


def metrics_table(table: dict[str, dict[str, float]]) -> TextTable:
    """One row per contender: its name, then METRIC_NAMES."""
    rows = [
        [name, *(f"{scores[column]:.4f}" for column in METRIC_NAMES)]
        for name, scores in table.items()
    ]
    return TextTable(
        "holdout metrics (every contender, the champion, the recency reference)",
        ("contender", *METRIC_NAMES),
        rows,
    )


def metrics_markdown(version: ModelVersion, embed_charts: bool = False) -> str:
    """The model card; `embed_charts` shows the charts inside it (for the Prefect UI)."""
    metrics, manifest = metrics_of(version), manifest_of(version)
    data = metrics.data
    skipped = ", ".join(data.skipped_cutoffs) or "none"
    calibrator = manifest.calibrator.method
    if data.n_calibration:  # rows written before the holdout was split have none
        calibrator += f", chosen on {data.n_calibration:,} other holdout customers"
    not_trained = "; ".join(f"{k}: {why}" for k, why in metrics.skipped_contenders.items())
    not_trained = f" Not trained: {not_trained}." if not_trained else ""
    return f"""# Model card: version {version.id} ({version.kind})

**Status:** {version.status} — {version.status_reason or ""}

**Contenders:** {", ".join(metrics.contenders)}; registered: `{metrics.winner}`, the best
by holdout {metrics.selection_metric} (ties by log loss).{not_trained}

| data | |
|---|---|
| as of | {data.as_of} |
| horizon | {version.horizon_days} days |
| training cutoffs | {", ".join(data.train_cutoffs)} |
| skipped cutoffs (no customers yet) | {skipped} |
| holdout cutoff | {data.holdout_cutoff} |
| customers read | {customers_read(data)} |
| events read | {data.n_events:,} |
| earliest event read | {data.first_event or "not recorded"} |
| training rows / base rate | {data.n_train:,} / {data.train_base_rate:.3f} |
| holdout rows / base rate | {data.n_holdout:,} / {data.holdout_base_rate:.3f} |
| calibrator | {calibrator} |
| drift reference | {drift_reference(manifest)} |

## Holdout metrics (same customers, same cutoff)

{metrics_table(metrics.table).markdown()}

`gru` / `lstm` is the recurrent model (calibrated; `_raw` before calibration),
`gru_hybrid` / `lstm_hybrid` the same network also fed gradient boosting's out-of-fold
score, `logistic` and `gbm` the models on the static RFM features, `recency` the reference
heuristic (never served), `champion` the model in production before this run.

{value_markdown(metrics.value)}

## Charts

{chart_lines(metrics.charts, embed_charts)}
"""


VALUE_FIGURES = (
    "value_gini",
    "mae",
    "top_decile_revenue_share",
    "predicted_total",
    "realized_total",
)


def value_markdown(value: ValueMetrics | None) -> str:
    """The value contenders on the holdout's realized spend, the one that rides with the
    model, and its strongest drivers; a line where value was off or not recorded."""
    title = "## Expected value (spend in the horizon)"
    if value is None:
        return f"{title}\n\nNot recorded: this version predates value models."
    skipped = "; ".join(f"{kind}: {why}" for kind, why in value.skipped.items())
    if value.winner is None:
        return f"{title}\n\nNo value model: {skipped or 'none could be trained'}."
    rows = [
        [name, *(figure(scores[column], 4) for column in VALUE_FIGURES)]
        for name, scores in value.table.items()
    ]
    header = ("contender", "Gini", "MAE", "top-decile share", "predicted", "realized")
    table = TextTable("value on the holdout", header, rows)
    drivers = "\n".join(
        f"- {markdown_text(name)}: moves the expected value by {moved:,.2f} on average"
        for name, moved in value.drivers.items()
    )
    not_trained = f" Not trained: {skipped}." if skipped else ""
    return f"""{title}

Served: `{value.winner}`, the best by normalised Gini on the holdout's realized spend (ties
by mean absolute error).{not_trained} `two_stage` is the propensity times gradient boosting's
spend given a purchase, `gbm_poisson` gradient boosting on the spend with a Poisson loss,
`ziln` the recurrent network with a zero-inflated lognormal head.

{table.markdown()}

{level_markdown(value.level)}

Its strongest drivers (the feature set to its mean):

{drivers}"""


def level_markdown(level: Level | None) -> str:
    """Which forecast the served expected values were scaled to, and how each forecaster
    did on the newest labelled window."""
    if level is None:
        return "Served on the level of the newest labelled period (recorded before levels were)."
    checks = ", ".join(f"`{kind}` {ratio:.2f}" for kind, ratio in level.checks.items())
    failed = "; ".join(
        f"`{kind}` could not forecast: {markdown_text(why)}" for kind, why in level.failures.items()
    )
    return (
        f"The expected values' total is put on the `{level.kind}` forecast of the next "
        f"horizon's spend ({level.total:,.2f} for the customers read), the forecaster nearest "
        f"what came in on the newest labelled window (forecast / realized: "
        f"{checks or 'none judged'})." + (f" {failed}." if failed else "")
    )


def drift_reference(manifest: ModelManifest) -> str:
    if manifest.drift_reference is None:
        return "none (trained before drift was measured)"
    return "the customers read, at the data cutoff; tenure measured, never an alarm"


def customers_read(data: TrainingData) -> str:
    if not data.population:  # rows written before the sample existed
        return "every customer (not counted)"
    if data.n_customers == data.population:
        return f"all {data.population:,}"
    return f"a sample of {data.n_customers:,} of {data.population:,} (the first by md5 of the id)"


def chart_lines(paths: tuple[str, ...], embed: bool = False) -> str:
    """The chart files, by path (a file:// link would be dead in a browser on another
    machine); with `embed`, each chart on this host is shown too, its PNG inside the
    Markdown: the Prefect UI displays it on any machine."""
    files = [Path(path) for path in paths]
    if not files:
        return "none"
    links = "\n".join(f"- {file.stem}: `{file.resolve()}`" for file in files)
    if not embed:
        return links
    images = [embedded_image(file.stem, file.read_bytes()) for file in files if file.is_file()]
    return "\n\n".join([*images, f"The PNG files, on the host that trained the model:\n\n{links}"])


def embedded_image(name: str, image: bytes) -> str:
    """A Markdown image carrying its PNG as a data URI (Prefect's UI renders these in
    markdown artifacts)."""
    return f"![{name}](data:image/png;base64,{base64.b64encode(image).decode('ascii')})"


# --- score runs and their drift ----------------------------------------------------------


def score_headline(summary: ScoreSummary) -> str:
    headline = (
        f"score run {summary.score_run_id}: {summary.n_scored:,} customers scored as of "
        f"{summary.as_of} with model version {summary.model_version_id} in "
        f"{summary.seconds:.1f} s ({summary.customers_per_second:,.0f} customers/s)"
    )
    if summary.replaced:
        runs = ", ".join(map(str, summary.replaced))
        headline += f"; it replaces score run {runs} of the same as_of and model"
    return headline


def drift_line(summary: ScoreSummary) -> str:
    if summary.drift is None:
        return (
            f"drift not measured: model version {summary.model_version_id} was trained "
            "without a drift reference (before drift was measured); retrain to measure it"
        )
    return drift_verdict(summary.drift)


def drift_verdict(drift: DriftCheck) -> str:
    aged = [
        f"{name} {value:.2f}"
        for name, value in drift.largest_first()
        if name in GROWS_WITH_TIME and value > drift.threshold
    ]
    aside = f"; {', '.join(aged)}: grows with time, not an alarm" if aged else ""
    if drift.drifted:
        named = ", ".join(f"{name} ({value:.2f})" for name, value in drift.drifted.items())
        return f"drift: PSI above {drift.threshold:g} for {named}{aside}"
    alarmable = [(n, v) for n, v in drift.largest_first() if n not in GROWS_WITH_TIME]
    name, value = (alarmable or drift.largest_first())[0]
    return (
        f"no drift: every PSI is at most {drift.threshold:g} (the largest {value:.3f}, "
        f"{name}){aside}"
    )


def drift_table(drift: DriftCheck, title: str) -> TextTable:
    def verdict(name: str, value: float) -> str:
        if name in drift.drifted:
            return "drifted"
        return "grows with time: not an alarm" if value > drift.threshold else ""

    rows = [[name, f"{value:.4f}", verdict(name, value)] for name, value in drift.largest_first()]
    return TextTable(title, ("feature", "PSI", f"above {drift.threshold:g}"), rows)


def stored_drift_table(run: RunDriftCheck) -> TextTable:
    return drift_table(
        run.drift,
        f"drift of score run {run.score_run_id} (as of {run.as_of:%Y-%m-%d}) against "
        f"model version {run.model_version_id}'s training reference",
    )


def decile_table(summary: ScoreSummary) -> TextTable:
    rows = [
        [str(d.decile), f"{d.customers:,}", *(f"{v:.4f}" for v in (d.mean, d.min, d.max))]
        for d in summary.deciles
    ]
    return TextTable(
        "scores by decile (1 = best)", ("decile", "customers", "mean", "min", "max"), rows
    )


def top_table(summary: ScoreSummary, names: CustomerNames = BY_ID) -> TextTable:
    """The run's best customers, named by `names` (their ids on the operator's terminal,
    pseudonyms in what Prefect keeps)."""
    rows = [
        [
            str(t.rank),
            names(t.customer_id),
            f"{t.propensity:.4f}",
            figure(t.expected_value, 2),
            reasons_text(t.reasons),
        ]
        for t in summary.top
    ]
    header = ("rank", names.column, "propensity", "expected value", "reasons")
    return TextTable("top customers", header, rows)


def reasons_text(reasons: tuple[str, ...]) -> str:
    return ", ".join(reasons)


def score_markdown(summary: ScoreSummary, names: CustomerNames) -> str:
    drift = "" if summary.drift is None else drift_table(summary.drift, "psi").markdown()
    return f"""# Score run {summary.score_run_id}

{score_headline(summary)}.

## Drift against the model's training reference

{drift_line(summary)}.

{drift}

## Scores by decile (1 = best)

{decile_table(summary).markdown()}

## Top customers

{top_table(summary, names).markdown()}
"""


# --- judged runs -------------------------------------------------------------------------

# The figures of a judged run that tables print, in their order.
OUTCOME_FIGURES = (
    "base_rate",
    "roc_auc",
    "log_loss",
    "ece",
    "top_decile_lift",
    "value_gini",
    "predicted_revenue",
    "realized_revenue",
)
OUTCOME_HEADER = (
    "base rate",
    "AUC",
    "log loss",
    "ECE",
    "lift",
    "value Gini",
    "expected revenue",
    "revenue",
)
# How many digits each figure shows; four where not named.
FIGURE_DIGITS = {"top_decile_lift": 2, "predicted_revenue": 0, "realized_revenue": 0}
EVALUATION_HEADER = ("run", "as_of", "model", "customers", "converted", *OUTCOME_HEADER)


def evaluation_line(evaluation: RunEvaluation) -> str:
    run = evaluation.run
    about = f"score run {run.score_run_id} (as of {run.as_of:%Y-%m-%d %H:%M})"
    if evaluation.outcome is not None:
        o = evaluation.outcome
        auc = "undefined" if o.roc_auc is None else f"{o.roc_auc:.4f}"
        value = ""
        if o.realized_revenue is not None:
            value = (
                f"; revenue {o.realized_revenue:,.0f} against {o.predicted_revenue:,.0f} "
                f"expected, value Gini {figure(o.value_gini)}"
            )
        return (
            f"{about}: {o.n_converted:,} of {o.n_customers:,} customers converted, "
            f"AUC {auc}, log loss {o.log_loss:.4f}{value}"
        )
    if evaluation.skipped is not None:
        return f"{about} skipped: {evaluation.skipped}"
    return f"{about}: not matured until {run.matures_at:%Y-%m-%d %H:%M}"


def evaluation_table(evaluations: list[RunEvaluation]) -> TextTable:
    """One row per run: its realized figures, or when it matures, or why it was skipped."""
    rows = []
    for evaluation in evaluations:
        run, outcome = evaluation.run, evaluation.outcome
        about = [str(run.score_run_id), f"{run.as_of:%Y-%m-%d %H:%M}", run.kind or "gone"]
        if outcome is None:
            state = evaluation.skipped and f"skipped: {evaluation.skipped}"
            state = state or f"not matured until {run.matures_at:%Y-%m-%d %H:%M}"
            rows.append([*about, state, *[""] * (len(EVALUATION_HEADER) - len(about) - 1)])
            continue
        rows.append(
            [
                *about,
                f"{outcome.n_customers:,}",
                f"{outcome.n_converted:,}",
                *outcome_cells(outcome),
            ]
        )
    return TextTable("realized outcomes of score runs", EVALUATION_HEADER, rows)


def outcome_cells(outcome: RealizedOutcome) -> list[str]:
    """The OUTCOME_FIGURES of a judged run as the tables print them."""
    figures = outcome.columns()
    return [outcome_figure(name, figures[name]) for name in OUTCOME_FIGURES]


def outcome_figure(name: str, value: float | None) -> str:
    """One of OUTCOME_FIGURES as the tables print it."""
    return figure(value, FIGURE_DIGITS.get(name, 4))


def holdout_figures(run: EvaluatedRun) -> dict[str, float]:
    """The run's model's holdout figures, with the holdout's base rate; empty for a model
    row that is gone."""
    if run.model_metrics is None:
        return {}
    metrics = ModelMetrics.from_json(run.model_metrics)
    figures = {**metrics.table[metrics.winner], "base_rate": metrics.data.holdout_base_rate}
    value = metrics.value
    if value is not None and value.winner is not None:
        figures["value_gini"] = value.table[value.winner]["value_gini"]
    return figures


MONITORING_HEADER = ("run", "as_of", "model", "customers", "expected", "actual", *OUTCOME_HEADER)


def monitoring_table(runs: list[EvaluatedRun]) -> TextTable:
    """Judged runs: each realized figure, then its model's figure on the retrain's holdout."""
    rows = []
    for run in runs:
        holdout = holdout_figures(run)
        rows.append(
            [
                str(run.score_run_id),
                f"{run.as_of:%Y-%m-%d}",
                f"{run.kind or 'gone'} #{run.model_version_id}",
                f"{run.n_customers:,}",
                f"{run.expected:,.1f}",
                f"{run.n_converted:,}",
                *(
                    f"{outcome_figure(k, run.figures[k])} / {outcome_figure(k, holdout.get(k))}"
                    for k in OUTCOME_FIGURES
                ),
            ]
        )
    return TextTable(
        "score runs judged after their horizon: realized / the model's holdout",
        MONITORING_HEADER,
        rows,
    )


def runs_figure(runs: list[EvaluatedRun]) -> Figure:
    """Realized AUC beside the holdout's, and expected beside actual conversions, by as_of."""
    history = pd.DataFrame(
        {
            "as_of": [run.as_of for run in runs],
            "roc_auc": [run.figures["roc_auc"] for run in runs],
            "holdout_roc_auc": [holdout_figures(run).get("roc_auc") for run in runs],
            "expected": [run.expected for run in runs],
            "actual": [run.n_converted for run in runs],
            "expected_revenue": [run.figures["predicted_revenue"] for run in runs],
            "actual_revenue": [run.figures["realized_revenue"] for run in runs],
        }
    ).astype(
        {
            "roc_auc": float,
            "holdout_roc_auc": float,
            "expected_revenue": float,
            "actual_revenue": float,
        }
    )
    return monitoring_figure(history)


def outcomes_markdown(
    evaluations: list[RunEvaluation], runs: list[EvaluatedRun], chart_png: bytes
) -> str:
    """The runs just judged, then the latest judged runs beside their models' holdout
    figures, as a table and as the monitoring chart inside the Markdown (Prefect's UI shows
    it on any machine)."""
    chart = embedded_image("realized AUC and conversions by score run", chart_png)
    return f"""# Realized outcomes

{evaluation_table(evaluations).markdown()}

## The latest judged runs: realized / the model's holdout

{monitoring_table(runs).markdown()}

{chart}
"""


# --- backtests ---------------------------------------------------------------------------


def backtest_record(row: BacktestRow) -> dict[str, Any]:
    """The row as the CSV file and the table artifact hold it."""
    figures = row.outcome.columns()
    return {
        "cutoff": f"{row.cutoff:%Y-%m-%d %H:%M:%S}",
        "model": row.model,
        "kind": row.kind,
        "value_kind": row.value_kind,
        # The printed figures first: the UI shows a wide table's first columns.
        **{name: figures[name] for name in OUTCOME_FIGURES},
        **figures,
        "model_version_id": row.model_version_id,
        "score_run_id": row.score_run_id,
    }


def rounded(record: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    """The record with its floats rounded, as a table artifact shows them."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in record.items()}


def backtest_table(backtest: Backtest) -> TextTable:
    rows = [
        [
            f"{row.cutoff:%Y-%m-%d}",
            row.model,
            f"{row.kind} #{row.model_version_id}",
            row.value_kind or "none",
            f"{row.outcome.n_customers:,}",
            *outcome_cells(row.outcome),
        ]
        for row in backtest.rows
    ]
    header = ("cutoff", "model", "kind", "value model", "customers", *OUTCOME_HEADER)
    return TextTable("backtest: scores judged after their horizon", header, rows)

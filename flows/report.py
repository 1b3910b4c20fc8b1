"""What people read about models and score runs: the tables once, rendered as Markdown for
Prefect artifacts and as terminal tables by the CLI."""

import base64
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from sqlalchemy import Connection

from db.drift import latest_drift
from db.models import ModelVersion
from db.outcomes import evaluated_runs
from db.scores import decile_distribution, score_run_row, top_scores
from flows.outcomes import RunEvaluation
from flows.registry import manifest_of, metrics_of
from llm_model.charts import monitoring_figure, png, save
from llm_model.manifest import ModelMetrics
from llm_model.monitoring import RealizedOutcome

METRIC_COLUMNS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift")
# Score runs the report's monitoring section shows.
MONITORED_RUNS = 12


@dataclass(frozen=True)
class TextTable:
    title: str
    header: tuple[str, ...]
    rows: list[list[str]]

    def markdown(self) -> str:
        return "\n".join(
            [
                "| " + " | ".join(self.header) + " |",
                "|" + "---|" * len(self.header),
                *("| " + " | ".join(row) + " |" for row in self.rows),
            ]
        )


@dataclass(frozen=True)
class RetrainOutcome:
    """A registered challenger and the champion/challenger decision on it."""

    version_id: int
    kind: str
    status: str
    reason: str
    table: dict[str, dict[str, float]]
    card: str = ""

    def decision(self) -> str:
        return f"model version {self.version_id} ({self.kind}): {self.status} — {self.reason}"


@dataclass(frozen=True)
class DriftCheck:
    """A score run's population stability index per static feature and for the score against
    its model's training reference; above `threshold` one counts as drifted."""

    psi: dict[str, float]
    threshold: float

    @property
    def drifted(self) -> dict[str, float]:
        """The drifted ones, largest PSI first."""
        return {name: value for name, value in self.largest_first() if value > self.threshold}

    def largest_first(self) -> list[tuple[str, float]]:
        return sorted(self.psi.items(), key=lambda item: -item[1])

    def line(self) -> str:
        if self.drifted:
            named = ", ".join(f"{name} ({value:.2f})" for name, value in self.drifted.items())
            return f"drift: PSI above {self.threshold:g} for {named}"
        name, value = self.largest_first()[0]
        return (
            f"no drift: every PSI is at most {self.threshold:g} (the largest {value:.3f}, {name})"
        )

    def table(self, title: str) -> TextTable:
        rows = [
            [name, f"{value:.4f}", "drifted" if value > self.threshold else ""]
            for name, value in self.largest_first()
        ]
        return TextTable(title, ("feature", "PSI", f"above {self.threshold:g}"), rows)


@dataclass(frozen=True)
class ScoreSummary:
    """A published score run as its summary shows it; `drift` is None for a model trained
    without a drift reference."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    n_scored: int
    seconds: float
    deciles: list[dict]
    top: list[dict]
    drift: DriftCheck | None = None

    @property
    def customers_per_second(self) -> float:
        return self.n_scored / self.seconds if self.seconds > 0 else 0.0

    def headline(self) -> str:
        return (
            f"score run {self.score_run_id}: {self.n_scored:,} customers scored as of "
            f"{self.as_of} with model version {self.model_version_id} in {self.seconds:.1f} s "
            f"({self.customers_per_second:,.0f} customers/s)"
        )

    def drift_line(self) -> str:
        if self.drift is None:
            return (
                f"drift not measured: model version {self.model_version_id} was trained "
                "without a drift reference (before drift was measured); retrain to measure it"
            )
        return self.drift.line()

    def decile_table(self) -> TextTable:
        rows = [
            [
                str(d["decile"]),
                f"{d['customers']:,}",
                *(f"{d[k]:.4f}" for k in ("mean", "min", "max")),
            ]
            for d in self.deciles
        ]
        return TextTable(
            "scores by decile (1 = best)", ("decile", "customers", "mean", "min", "max"), rows
        )

    def top_table(self) -> TextTable:
        rows = [
            [str(t["rank"]), t["customer_id"], f"{t['propensity']:.4f}", reasons_text(t)]
            for t in self.top
        ]
        return TextTable("top customers", ("rank", "customer_id", "propensity", "reasons"), rows)


def score_summary(
    connection: Connection, score_run_id: int, drift: DriftCheck | None = None
) -> ScoreSummary:
    run = score_run_row(connection, score_run_id)
    return ScoreSummary(
        score_run_id=score_run_id,
        as_of=run["as_of"],
        model_version_id=run["model_version_id"],
        n_scored=run["n_scored"],
        seconds=(run["finished_at"] - run["started_at"]).total_seconds(),
        deciles=decile_distribution(connection, score_run_id),
        top=top_scores(connection, score_run_id),
        drift=drift,
    )


def score_markdown(summary: ScoreSummary) -> str:
    return f"""# Score run {summary.score_run_id}

{summary.headline()}.

## Drift against the model's training reference

{summary.drift_line()}.

{drift_markdown(summary.drift)}

## Scores by decile (1 = best)

{summary.decile_table().markdown()}

## Top customers

{summary.top_table().markdown()}
"""


def drift_markdown(drift: DriftCheck | None) -> str:
    return "" if drift is None else drift.table("population stability index").markdown()


def drift_report(connection: Connection, threshold: float) -> TextTable | None:
    """The latest measured run's drift, largest PSI first; None before any run measured it."""
    latest = latest_drift(connection)
    if latest is None:
        return None
    return DriftCheck(latest.psi, threshold).table(
        f"drift of score run {latest.score_run_id} (as of {latest.as_of:%Y-%m-%d}) against "
        f"model version {latest.model_version_id}'s training reference"
    )


def reasons_text(row: dict) -> str:
    return ", ".join(r for r in (row["reason_1"], row["reason_2"], row["reason_3"]) if r)


def metrics_table(table: dict[str, dict[str, float]]) -> TextTable:
    """One row per contender: its name, then METRIC_COLUMNS."""
    rows = [
        [name, *(f"{scores[column]:.4f}" for column in METRIC_COLUMNS)]
        for name, scores in table.items()
    ]
    return TextTable(
        "holdout metrics (every contender, the champion, the recency reference)",
        ("contender", *METRIC_COLUMNS),
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
| events read | {data.n_events:,} |
| training rows / base rate | {data.n_train:,} / {data.train_base_rate:.3f} |
| holdout rows / base rate | {data.n_holdout:,} / {data.holdout_base_rate:.3f} |
| calibrator | {calibrator} |

## Holdout metrics (same customers, same cutoff)

{metrics_table(metrics.table).markdown()}

`gru` / `lstm` is the recurrent model (calibrated; `_raw` before calibration),
`gru_hybrid` / `lstm_hybrid` the same network also fed gradient boosting's out-of-fold
score, `logistic` and `gbm` the models on the static RFM features, `recency` the reference
heuristic (never served), `champion` the model in production before this run.

## Charts

{chart_lines(metrics.charts, embed_charts)}
"""


def chart_lines(paths: tuple[str, ...], embed: bool = False) -> str:
    """Links to the chart files; with `embed`, each chart on this host is shown too, its PNG
    inside the Markdown: the Prefect UI displays it on any machine, where a file:// link
    opens only on the host that drew the chart."""
    files = [Path(path) for path in paths]
    if not files:
        return "none"
    links = "\n".join(f"- [{file.stem}]({file.resolve().as_uri()})" for file in files)
    if not embed:
        return links
    images = [embedded_image(file.stem, file.read_bytes()) for file in files if file.is_file()]
    return "\n\n".join([*images, f"The PNG files, on the host that trained the model:\n\n{links}"])


def embedded_image(name: str, image: bytes) -> str:
    """A Markdown image carrying its PNG as a data URI (Prefect's UI renders these in
    markdown artifacts)."""
    return f"![{name}](data:image/png;base64,{base64.b64encode(image).decode('ascii')})"


def figure(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# The figures of a judged run that tables print, in their order (headed "base rate", "AUC",
# "log loss", "ECE", "lift").
OUTCOME_FIGURES = ("base_rate", "roc_auc", "log_loss", "ece", "top_decile_lift")
EVALUATION_HEADER = (
    *("run", "as_of", "model", "customers", "converted", "base rate"),
    *("AUC", "log loss", "ECE", "lift"),
)


def evaluation_table(evaluations: list[RunEvaluation]) -> TextTable:
    """One row per run: its realized figures, or when it matures, or why it was skipped."""
    rows = []
    for evaluation in evaluations:
        run, outcome = evaluation.run, evaluation.outcome
        about = [str(run.score_run_id), f"{run.as_of:%Y-%m-%d %H:%M}", run.kind or "gone"]
        if outcome is None:
            state = evaluation.skipped and f"skipped: {evaluation.skipped}"
            state = state or f"not matured until {run.matures_at:%Y-%m-%d %H:%M}"
            rows.append([*about, state, *[""] * 6])
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
    return [
        figure(outcome.base_rate),
        figure(outcome.roc_auc),
        figure(outcome.log_loss),
        figure(outcome.ece),
        figure(outcome.top_decile_lift, 2),
    ]


def holdout_row(model_metrics: dict | None) -> dict[str, float]:
    """The registered contender's holdout figures, with the holdout's base rate; empty for
    a model row that is gone."""
    if model_metrics is None:
        return {}
    metrics = ModelMetrics.from_json(model_metrics)
    return {**metrics.table[metrics.winner], "base_rate": metrics.data.holdout_base_rate}


MONITORING_HEADER = (
    *("run", "as_of", "model", "customers", "expected", "actual"),
    *("base rate", "AUC", "log loss", "ECE", "lift"),
)


def monitoring_table(runs: list[dict]) -> TextTable:
    """Evaluated runs (db.outcomes.evaluated_runs): each realized figure, then its model's
    figure on the retrain's holdout."""
    rows = []
    for run in runs:
        holdout = holdout_row(run["model_metrics"])
        rows.append(
            [
                str(run["score_run_id"]),
                f"{run['as_of']:%Y-%m-%d}",
                f"{run['kind'] or 'gone'} #{run['model_version_id']}",
                f"{run['n_customers']:,}",
                f"{run['expected']:,.1f}",
                f"{run['n_converted']:,}",
                *(f"{figure(run[k])} / {figure(holdout.get(k))}" for k in OUTCOME_FIGURES),
            ]
        )
    return TextTable(
        "score runs judged after their horizon: realized / the model's holdout",
        MONITORING_HEADER,
        rows,
    )


def runs_figure(runs: list[dict]) -> Figure:
    """Realized AUC beside the holdout's, and expected beside actual conversions, by as_of."""
    history = pd.DataFrame(
        {
            "as_of": [run["as_of"] for run in runs],
            "roc_auc": [run["roc_auc"] for run in runs],
            "holdout_roc_auc": [holdout_row(run["model_metrics"]).get("roc_auc") for run in runs],
            "expected": [run["expected"] for run in runs],
            "actual": [run["n_converted"] for run in runs],
        }
    ).astype({"roc_auc": float, "holdout_roc_auc": float})
    return monitoring_figure(history)


def monitoring_chart(runs: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(runs_figure(runs), path)


def outcomes_markdown(connection: Connection, evaluations: list[RunEvaluation]) -> str:
    """The runs just judged, then the latest judged runs beside their models' holdout
    figures, as a table and as the monitoring chart inside the Markdown (Prefect's UI shows
    it on any machine)."""
    runs = evaluated_runs(connection, MONITORED_RUNS)
    chart = embedded_image("realized AUC and conversions by score run", png(runs_figure(runs)))
    return f"""# Realized outcomes

{evaluation_table(evaluations).markdown()}

## The latest judged runs: realized / the model's holdout

{monitoring_table(runs).markdown()}

{chart}
"""


@dataclass(frozen=True)
class MonitoringReport:
    table: TextTable
    chart: Path


def monitoring_report(
    connection: Connection, reports_dir: Path, limit: int = MONITORED_RUNS
) -> MonitoringReport | None:
    """The latest evaluated runs as a table and a chart in `reports_dir`; None before any
    run was evaluated."""
    runs = evaluated_runs(connection, limit)
    if not runs:
        return None
    return MonitoringReport(
        monitoring_table(runs), monitoring_chart(runs, reports_dir / "monitoring.png")
    )

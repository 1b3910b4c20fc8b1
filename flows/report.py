"""What people read about models and score runs: the tables once, rendered as Markdown for
Prefect artifacts and as terminal tables by the CLI."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from db.models import ModelVersion
from db.scores import decile_distribution, score_run_row, top_scores
from flows.registry import manifest_of, metrics_of

METRIC_COLUMNS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift")


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
class ScoreSummary:
    """A published score run as its summary shows it."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    n_scored: int
    seconds: float
    deciles: list[dict]
    top: list[dict]

    @property
    def customers_per_second(self) -> float:
        return self.n_scored / self.seconds if self.seconds > 0 else 0.0

    def headline(self) -> str:
        return (
            f"score run {self.score_run_id}: {self.n_scored:,} customers scored as of "
            f"{self.as_of} with model version {self.model_version_id} in {self.seconds:.1f} s "
            f"({self.customers_per_second:,.0f} customers/s)"
        )

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


def score_summary(connection: Connection, score_run_id: int) -> ScoreSummary:
    run = score_run_row(connection, score_run_id)
    return ScoreSummary(
        score_run_id=score_run_id,
        as_of=run["as_of"],
        model_version_id=run["model_version_id"],
        n_scored=run["n_scored"],
        seconds=(run["finished_at"] - run["started_at"]).total_seconds(),
        deciles=decile_distribution(connection, score_run_id),
        top=top_scores(connection, score_run_id),
    )


def score_markdown(summary: ScoreSummary) -> str:
    return f"""# Score run {summary.score_run_id}

{summary.headline()}.

## Scores by decile (1 = best)

{summary.decile_table().markdown()}

## Top customers

{summary.top_table().markdown()}
"""


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


def metrics_markdown(version: ModelVersion) -> str:
    metrics, manifest = metrics_of(version), manifest_of(version)
    data = metrics.data
    skipped = ", ".join(data.skipped_cutoffs) or "none"
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
| calibrator | {manifest.calibrator.method} |

## Holdout metrics (same customers, same cutoff)

{metrics_table(metrics.table).markdown()}

`gru` / `lstm` is the recurrent model (calibrated; `_raw` before calibration),
`gru_hybrid` / `lstm_hybrid` the same network also fed gradient boosting's out-of-fold
score, `logistic` and `gbm` the models on the static RFM features, `recency` the reference
heuristic (never served), `champion` the model in production before this run.

## Charts

{chart_lines(metrics.charts)}
"""


def chart_lines(paths: tuple[str, ...]) -> str:
    return (
        "\n".join(f"- [{Path(path).stem}]({Path(path).resolve().as_uri()})" for path in paths)
        or "none"
    )

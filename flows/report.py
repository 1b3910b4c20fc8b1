"""Human-readable model cards and metric tables, shared by the flow artifacts and the CLI."""

from pathlib import Path

from sqlalchemy import Connection

from db.models import ModelVersion
from db.scores import decile_distribution, score_run_row, top_scores

METRIC_COLUMNS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift")


def metric_rows(table: dict[str, dict[str, float]]) -> list[list[str]]:
    """One row per contender: name then METRIC_COLUMNS, formatted."""
    return [
        [name, *(f"{scores[column]:.4f}" for column in METRIC_COLUMNS)]
        for name, scores in table.items()
    ]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def metrics_markdown(version: ModelVersion) -> str:
    metrics = version.metrics
    data = metrics["data"]
    table = markdown_table(["contender", *METRIC_COLUMNS], metric_rows(metrics["table"]))
    return f"""# Model card: version {version.id} ({version.cell.upper()})

**Status:** {version.status} — {version.status_reason or ""}

| data | |
|---|---|
| as of | {data["as_of"]} |
| horizon | {version.horizon_days} days |
| training cutoffs | {", ".join(data["train_cutoffs"])} |
| holdout cutoff | {data["holdout_cutoff"]} |
| events read | {data["n_events"]:,} |
| training rows / base rate | {data["n_train"]:,} / {data["train_base_rate"]:.3f} |
| holdout rows / base rate | {data["n_holdout"]:,} / {data["holdout_base_rate"]:.3f} |
| calibrator | {version.config["sidecar"]["calibrator"]["method"]} |

## Holdout metrics (same customers, same cutoff)

{table}

`model` is the calibrated challenger, `model_raw` its uncalibrated output, `champion` the
model in production before this run; the rest are baselines on static RFM features.

## Charts

{chart_lines(metrics.get("charts", []))}
"""


def chart_lines(paths: list[str]) -> str:
    return (
        "\n".join(f"- [{Path(path).stem}]({Path(path).resolve().as_uri()})" for path in paths)
        or "none"
    )


def score_summary(connection: Connection, score_run_id: int) -> dict:
    run = score_run_row(connection, score_run_id)
    seconds = (run["finished_at"] - run["started_at"]).total_seconds()
    return {
        **run,
        "seconds": seconds,
        "customers_per_second": run["n_scored"] / seconds if seconds > 0 else None,
        "deciles": decile_distribution(connection, score_run_id),
        "top": top_scores(connection, score_run_id),
    }


def score_markdown(summary: dict) -> str:
    deciles = markdown_table(
        ["decile", "customers", "mean", "min", "max"],
        [
            [
                str(d["decile"]),
                f"{d['customers']:,}",
                *(f"{d[k]:.4f}" for k in ("mean", "min", "max")),
            ]
            for d in summary["deciles"]
        ],
    )
    top = markdown_table(
        ["rank", "customer_id", "propensity", "reasons"],
        [
            [str(t["rank"]), t["customer_id"], f"{t['propensity']:.4f}", reasons_text(t)]
            for t in summary["top"]
        ],
    )
    rate = summary["customers_per_second"]
    return f"""# Score run {summary["score_run_id"]}

{summary["n_scored"]:,} customers scored as of {summary["as_of"]} with model version
{summary["model_version_id"]} in {summary["seconds"]:.1f} s ({rate or 0:,.0f} customers/s).

## Scores by decile (1 = best)

{deciles}

## Top customers

{top}
"""


def reasons_text(row: dict) -> str:
    return ", ".join(r for r in (row["reason_1"], row["reason_2"], row["reason_3"]) if r)

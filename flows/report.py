"""Human-readable model cards and metric tables, shared by the flow artifacts and the CLI."""

from db.models import ModelVersion

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
"""

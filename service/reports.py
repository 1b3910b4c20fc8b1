"""The reports' data, read from the service database as typed rows, and the chart files the
report writes."""

from pathlib import Path

from sqlalchemy import Connection

from db.drift import latest_drift
from db.files import private_folder
from db.outcomes import evaluated_runs
from db.scores import decile_distribution, score_run_row, top_scores
from llm_model.charts import png, save
from service.registry import database_reports
from service.rendering import runs_figure
from service.results import DriftCheck, MonitoringReport, RunDriftCheck, ScoreSummary

# Score runs the report's monitoring section shows.
MONITORED_RUNS = 12


def score_summary(
    connection: Connection,
    score_run_id: int,
    drift: DriftCheck | None = None,
    replaced: tuple[int, ...] = (),
) -> ScoreSummary:
    run = score_run_row(connection, score_run_id)
    return ScoreSummary(
        score_run_id=score_run_id,
        as_of=run.as_of,
        model_version_id=run.model_version_id,
        n_scored=run.n_scored,
        seconds=(run.finished_at - run.started_at).total_seconds(),
        deciles=decile_distribution(connection, score_run_id),
        top=top_scores(connection, score_run_id),
        drift=drift,
        replaced=replaced,
    )


def latest_drift_check(connection: Connection, threshold: float) -> RunDriftCheck | None:
    """The latest measured run's drift; None before any run measured it."""
    latest = latest_drift(connection)
    if latest is None:
        return None
    return RunDriftCheck(
        latest.score_run_id,
        latest.as_of,
        latest.model_version_id,
        DriftCheck(latest.psi, threshold),
    )


def monitoring_report(
    connection: Connection, reports_dir: Path, limit: int = MONITORED_RUNS
) -> MonitoringReport | None:
    """The latest judged runs, and their chart written to the database's folder under
    `reports_dir`; None before any run was judged."""
    runs = evaluated_runs(connection, limit)
    if not runs:
        return None
    folder = private_folder(database_reports(reports_dir, connection.engine.url))
    return MonitoringReport(runs, save(runs_figure(runs), folder / "monitoring.png"))


def monitoring_png(connection: Connection, limit: int = MONITORED_RUNS) -> tuple[list, bytes]:
    """The latest judged runs and their chart as PNG bytes, for an artifact."""
    runs = evaluated_runs(connection, limit)
    return runs, png(runs_figure(runs))

"""Monitoring tasks of the score flow: announce a run's drift, judge the runs whose horizon
has passed since."""

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import Event, emit_event

from db.errors import error_line
from db.source import EventSource
from flows.tasks import compute_task, io_task
from service.databases import Databases
from service.outcomes import evaluate_runs
from service.rendering import drift_line, evaluation_line, outcomes_markdown
from service.reports import monitoring_png
from service.results import ScoreSummary

# What an automation triggers on; its resource is the score run, its payload the drifted
# features' PSI.
DRIFT_EVENT = "propensity.drift.detected"


@compute_task
def announce_drift(summary: ScoreSummary) -> Event | None:
    """Log the run's drift; where a feature or the score drifted, warn naming them and emit
    DRIFT_EVENT (the event, or None when nothing drifted or events are off). The run stays
    published either way."""
    logger = get_run_logger()
    drift = summary.drift
    if drift is None or not drift.drifted:
        logger.info(drift_line(summary))
        return None
    logger.warning(drift_line(summary))
    return emit_event(
        event=DRIFT_EVENT,
        resource={
            "prefect.resource.id": f"propensity.score-run.{summary.score_run_id}",
            "prefect.resource.name": f"score run {summary.score_run_id}",
        },
        related=[
            {
                "prefect.resource.id": f"propensity.model-version.{summary.model_version_id}",
                "prefect.resource.role": "model",
            }
        ],
        payload={
            "score_run_id": summary.score_run_id,
            "as_of": summary.as_of.isoformat(),
            "model_version_id": summary.model_version_id,
            "threshold": drift.threshold,
            "psi": drift.drifted,
        },
    )


@io_task
def evaluate_matured_runs(databases: Databases, source: EventSource) -> int:
    """Store the outcome of every matured run awaiting one; the number stored."""
    logger = get_run_logger()
    evaluations = evaluate_runs(databases, source)
    waiting = [e.run.matures_at for e in evaluations if not e.matured]
    if waiting:
        logger.info(f"{len(waiting)} score run(s) not matured yet, the next at {min(waiting)}")
    for evaluation in (e for e in evaluations if e.matured):
        log = logger.warning if evaluation.skipped else logger.info
        log(evaluation_line(evaluation))
    evaluated = [e for e in evaluations if e.outcome is not None]
    if evaluated:
        with databases.service().connect() as connection:
            runs, chart = monitoring_png(connection)
        markdown = outcomes_markdown(evaluated, runs, chart)
        create_markdown_artifact(
            markdown,
            key="score-run-outcomes",
            description="Score runs judged against what happened in their horizon",
        )
    return len(evaluated)


def evaluate_after_publication(databases: Databases, source: EventSource) -> None:
    """Evaluate what matured; a failure is only a warning: the published run stands and the
    next score run evaluates what is still awaiting its outcome."""
    try:
        evaluate_matured_runs(databases, source)
    except Exception as error:
        get_run_logger().warning(
            f"evaluating matured score runs failed; the next score run retries: {error_line(error)}"
        )

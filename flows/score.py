"""The score flow: champion -> partitions of active customers -> staged scores (and their
customers per drift bin) -> publish with the run's drift -> announce drift, judge the
earlier runs whose horizon has passed since."""

import sys
from datetime import datetime

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.runtime import flow_run
from rich.progress import Progress

from db.customers import partition_ranges
from db.drift import store_drift
from db.engine import transaction
from db.errors import error_line
from db.readers import events_frame
from db.registry import require_champion
from db.scores import (
    abandon_dead_runs,
    clear_partition,
    fail_score_run,
    publish_score_run,
    stage_scores,
    start_score_run,
)
from flows.leases import held_by_this_run
from flows.monitoring import announce_drift, evaluate_after_publication
from flows.task_runner import SettingsTaskRunner
from flows.tasks import compute_task, io_task
from llm_model.drift import BinCounts
from service.events import data_cutoff, source_columns
from service.partitions import (
    PartitionResult,
    ScoreJob,
    ScoreRunPlan,
    cached_model,
    collections_skip_what_is_alive,
    drift_counts,
    partition_features,
    partitions_in_memory,
    summed_bins,
)
from service.rendering import score_markdown
from service.reports import score_summary
from service.results import DriftCheck, ScoreSummary
from service.settings import ScoreRequest, current_settings


@io_task
def prepare_score_run(
    job: ScoreJob,
    as_of: datetime | None,
    partition_size: int,
    model_version_id: int | None,
    in_sample: bool = False,
) -> ScoreRunPlan:
    """Check the model (the champion unless another is named) and the data, then open a
    `running` score run. Runs found still running died (this run holds the score lease):
    they are abandoned and every staged row is deleted first."""
    service = job.databases.service()
    if model_version_id is None:
        with transaction(service) as session:
            model_version_id = require_champion(session).id
    # A corrupt artifact fails here, before anything is written.
    cached_model(job.databases, model_version_id)
    columns = source_columns(job.databases, job.source)
    cutoff = data_cutoff(job.databases, columns, as_of, get_run_logger())
    with job.rule_engine().connect() as connection:
        ranges = partition_ranges(connection, job.rule.query(columns, cutoff), partition_size)
    if not ranges:
        raise ValueError(f"no active customers at {cutoff} (rule: {job.rule.name})")
    with transaction(service) as session:
        if dead := abandon_dead_runs(session):
            get_run_logger().warning("abandoned score run(s) %s: their process died", dead)
        run_id = start_score_run(session, cutoff, model_version_id, flow_run.get_id(), in_sample)
    return ScoreRunPlan(run_id, cutoff, model_version_id, columns, ranges)


@compute_task
def warm_up_model(job: ScoreJob, plan: ScoreRunPlan) -> None:
    """Trace the model's inference function while the first partition reads its events,
    rather than after, when the model would otherwise wait for it."""
    model, predicting = cached_model(job.databases, plan.model_version_id)
    no_history = model.features(events_frame([]), ["warm-up"], pd.Timestamp(plan.as_of))
    with predicting:
        model.scores(no_history, with_reasons=job.reason_codes)


@io_task
def score_partition(
    job: ScoreJob, plan: ScoreRunPlan, low: str, high: str | None
) -> PartitionResult:
    with partitions_in_memory():
        model, predicting = cached_model(job.databases, plan.model_version_id)
        features = partition_features(job, plan, model, (low, high))
        with predicting:
            scores = model.scores(features, with_reasons=job.reason_codes)
        with job.databases.service().begin() as connection:
            # A retried partition replaces what an earlier attempt may have staged.
            clear_partition(connection, plan.run_id, (low, high))
            staged = stage_scores(connection, plan.run_id, scores)
        return PartitionResult(staged, drift_counts(model, features, scores))


@compute_task
def measure_drift(job: ScoreJob, plan: ScoreRunPlan, bins: BinCounts | None) -> DriftCheck | None:
    """The run's PSI per static feature and for the score; None when its model has no
    drift reference (its partitions counted no bins)."""
    if bins is None:
        return None
    model, _ = cached_model(job.databases, plan.model_version_id)
    return DriftCheck(model.manifest.drift_reference.psi(bins), job.drift_threshold)


@io_task
def publish_scores(job: ScoreJob, run_id: int, drift: DriftCheck | None) -> ScoreSummary:
    """Publish the run with its drift rows in one transaction: a succeeded run always has
    the drift it was published with."""
    with transaction(job.databases.service()) as session:
        publication = publish_score_run(session, run_id, job.retention)
        if drift is not None:
            store_drift(session, run_id, drift.psi)
    with job.databases.service().connect() as connection:
        return score_summary(connection, run_id, drift, publication.replaced)


@io_task
def mark_run_failed(job: ScoreJob, run_id: int, error: str) -> None:
    with transaction(job.databases.service()) as session:
        fail_score_run(session, run_id, error)


def run_partitions(job: ScoreJob, plan: ScoreRunPlan) -> BinCounts | None:
    """Score every partition; progress goes to a Prefect artifact and, on a terminal, a bar.
    The run's customers per bin of the model's drift reference, summed over partitions."""
    progress = create_progress_artifact(0.0, description=f"score run {plan.run_id}")
    warm_up = warm_up_model.submit(job, plan)
    futures = [score_partition.submit(job, plan, low, high) for low, high in plan.ranges]
    results = []
    with Progress(disable=not sys.stdout.isatty()) as bar:
        partitions = bar.add_task("scoring partitions", total=len(futures))
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            update_progress_artifact(progress, 100.0 * done / len(futures))
            bar.advance(partitions)
    warm_up.result()
    return summed_bins(results)


def score_and_publish(
    job: ScoreJob,
    as_of: datetime | None,
    partition_size: int,
    model_version_id: int | None = None,
    in_sample: bool = False,
) -> ScoreSummary:
    """One score run of the champion (or of the model `model_version_id`), published, or
    marked failed; the caller holds the score lease."""
    plan = prepare_score_run(job, as_of, partition_size, model_version_id, in_sample)
    try:
        with collections_skip_what_is_alive():
            bins = run_partitions(job, plan)
        return publish_scores(job, plan.run_id, measure_drift(job, plan, bins))
    except BaseException as error:
        mark_run_failed(job, plan.run_id, error_line(error))
        raise


@flow(name="score", log_prints=True, task_runner=SettingsTaskRunner())
def score(request: ScoreRequest = ScoreRequest()) -> ScoreSummary:  # noqa: B008
    settings = current_settings().for_run(request)
    job = ScoreJob.from_settings(settings)
    with held_by_this_run("score", job.databases, job.lease_heartbeat):
        summary = score_and_publish(
            job, request.as_of, settings.partition_size, in_sample=request.in_sample
        )
        announce_drift(summary)
        evaluate_after_publication(job.databases, job.source)
    markdown = score_markdown(summary, settings.artifact_names())
    create_markdown_artifact(markdown, key="score-run", description="Score run")
    return summary

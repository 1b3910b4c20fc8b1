"""The score flow: champion -> partitions of active customers -> staged scores -> publish."""

import sys
from datetime import datetime

import pandas as pd
from prefect import flow
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from rich.progress import Progress

from db.customers import partition_ranges
from db.engine import transaction
from db.readers import events_frame
from db.registry import require_champion
from db.scores import (
    clear_partition,
    fail_score_run,
    publish_score_run,
    stage_scores,
    start_score_run,
)
from flows.events import data_cutoff, source_columns
from flows.locks import exclusive
from flows.partitions import (
    PARTITIONS_AT_ONCE,
    ScoreJob,
    ScoreRunPlan,
    cached_model,
    partition_features,
    partitions_in_memory,
)
from flows.report import ScoreSummary, score_markdown, score_summary
from flows.runtime import collections_skip_what_is_alive
from flows.settings import Settings
from flows.tasks import compute_task, io_task


@io_task
def prepare_score_run(job: ScoreJob, as_of: datetime | None, partition_size: int) -> ScoreRunPlan:
    """Check the champion and the data, then open a `running` score run."""
    service = job.databases.service()
    with transaction(service) as session:
        champion = require_champion(session)
    # A corrupt artifact fails here, before anything is written.
    cached_model(job.databases, champion.id)
    columns = source_columns(job.databases, job.source)
    cutoff = data_cutoff(job.databases, columns, as_of).to_pydatetime()
    with job.rule_engine().connect() as connection:
        ranges = partition_ranges(connection, job.rule.query(columns, cutoff), partition_size)
    if not ranges:
        raise ValueError(f"no active customers at {cutoff} (rule: {job.rule.name})")
    with transaction(service) as session:
        run_id = start_score_run(session, cutoff, champion.id, flow_run.get_id(), job.stale_after)
    return ScoreRunPlan(run_id, cutoff, champion.id, columns, ranges)


@compute_task
def warm_up_model(job: ScoreJob, plan: ScoreRunPlan) -> None:
    """Trace the model's inference function while the first partition reads its events,
    rather than after, when the model would otherwise wait for it."""
    model, predicting = cached_model(job.databases, plan.model_version_id)
    no_history = model.features(events_frame([]), ["warm-up"], pd.Timestamp(plan.as_of))
    with predicting:
        model.scores(no_history, with_reasons=job.reason_codes)


@io_task
def score_partition(job: ScoreJob, plan: ScoreRunPlan, low: str, high: str | None) -> int:
    with partitions_in_memory():
        model, predicting = cached_model(job.databases, plan.model_version_id)
        features = partition_features(job, plan, model, (low, high))
        with predicting:
            scores = model.scores(features, with_reasons=job.reason_codes)
        with job.databases.service().begin() as connection:
            # A retried partition replaces what an earlier attempt may have staged.
            clear_partition(connection, plan.run_id, (low, high))
            return stage_scores(connection, plan.run_id, scores)


@io_task
def publish_scores(job: ScoreJob, run_id: int) -> ScoreSummary:
    with transaction(job.databases.service()) as session:
        publish_score_run(session, run_id, job.retention)
    with job.databases.service().connect() as connection:
        return score_summary(connection, run_id)


@io_task
def mark_run_failed(job: ScoreJob, run_id: int, error: str) -> None:
    with transaction(job.databases.service()) as session:
        fail_score_run(session, run_id, error)


def run_partitions(job: ScoreJob, plan: ScoreRunPlan) -> None:
    """Score every partition; progress goes to a Prefect artifact and, on a terminal, a bar."""
    progress = create_progress_artifact(0.0, description=f"score run {plan.run_id}")
    warm_up = warm_up_model.submit(job, plan)
    futures = [score_partition.submit(job, plan, low, high) for low, high in plan.ranges]
    with Progress(disable=not sys.stdout.isatty()) as bar:
        partitions = bar.add_task("scoring partitions", total=len(futures))
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            update_progress_artifact(progress, 100.0 * done / len(futures))
            bar.advance(partitions)
    warm_up.result()


# Prefect's default pool starts a thread per partition; every thread that allocates keeps a
# malloc arena of its own, so peak memory grew with the number of partitions.
@flow(
    name="score",
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=PARTITIONS_AT_ONCE),
)
def score(as_of: datetime | None = None, partition_size: int | None = None) -> ScoreSummary:
    settings = Settings()
    job = ScoreJob.from_settings(settings)
    with exclusive("score", job.databases, job.stale_after):
        plan = prepare_score_run(job, as_of, partition_size or settings.partition_size)
        try:
            with collections_skip_what_is_alive():
                run_partitions(job, plan)
            summary = publish_scores(job, plan.run_id)
        except BaseException as error:
            mark_run_failed(job, plan.run_id, f"{type(error).__name__}: {error}")
            raise
    create_markdown_artifact(score_markdown(summary), key="score-run", description="Score run")
    return summary


def configured_score_flow(settings: Settings):
    """The score flow on the task runner the settings ask for; the flow code is the same."""
    if settings.task_runner == "dask":
        # Dask loads only for runs that ask for it.
        from prefect_dask import DaskTaskRunner

        runner = (
            DaskTaskRunner(address=settings.dask_address)
            if settings.dask_address
            else DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})
        )
        return score.with_options(task_runner=runner)
    return score

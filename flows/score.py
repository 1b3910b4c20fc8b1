"""The score flow: champion -> partitions of active customers -> staged scores -> publish."""

import functools
import sys
import threading
from datetime import datetime, timedelta

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
from sqlalchemy import Connection, Select

from db.customers import ActiveRule, active_customer_ids, partition_ranges
from db.engine import transaction
from db.models import ModelVersion
from db.readers import events_frame, read_events
from db.registry import require_champion
from db.scores import (
    clear_partition,
    fail_score_run,
    publish_score_run,
    stage_scores,
    start_score_run,
)
from db.source import resolve_columns
from flows.report import score_markdown, score_summary
from flows.resources import (
    collections_skip_what_is_alive,
    data_cutoff,
    events_engine,
    exclusive,
    load_model,
    service_engine,
)
from flows.settings import Settings
from flows.tasks import compute_task, io_task
from llm_model.model import TrainedModel
from llm_model.sequences import Features


@functools.lru_cache(maxsize=2)
def cached_model(database_url: str, version_id: int) -> tuple[TrainedModel, threading.Lock]:
    """One model per process; the lock keeps partition threads from predicting at once."""
    with transaction(service_engine(Settings(database_url=database_url))) as session:
        model = load_model(session.get(ModelVersion, version_id))
    return model, threading.Lock()


def active_rule(settings: Settings) -> ActiveRule:
    return ActiveRule(settings.active_rule, settings.active_within_days)


def active_engine(settings: Settings):
    """is_active lives in the service's customers table; recent activity in the event source."""
    return (
        events_engine(settings) if active_rule(settings).reads_events else service_engine(settings)
    )


def active_query(connection: Connection, settings: Settings, as_of: datetime) -> Select:
    return active_rule(settings).query(connection, settings.event_source, as_of)


@io_task
def prepare_score_run(as_of: datetime | None, partition_size: int) -> dict:
    """Check the champion and the data, then open a `running` score run."""
    settings = Settings()
    engine = service_engine(settings)
    with transaction(engine) as session:
        champion = require_champion(session)
    # A corrupt artifact fails here, before anything is written.
    cached_model(settings.database_url, champion.id)
    cutoff = data_cutoff(settings, as_of).to_pydatetime()
    with active_engine(settings).connect() as connection:
        ranges = partition_ranges(
            connection, active_query(connection, settings, cutoff), partition_size
        )
    if not ranges:
        raise ValueError(f"no active customers at {cutoff} (rule: {settings.active_rule})")
    with transaction(engine) as session:
        run_id = start_score_run(
            session,
            cutoff,
            champion.id,
            flow_run.get_id(),
            timedelta(hours=settings.job_stale_hours),
        )
    return {"run_id": run_id, "as_of": cutoff, "model_version_id": champion.id, "ranges": ranges}


PARTITIONS_AT_ONCE = 2


@functools.cache
def partitions_in_memory() -> threading.BoundedSemaphore:
    """Partitions that hold their data at once, per process: one predicting while the next
    reads and builds its features, or both reading while the model waits. Two reads at once
    overlap their database servers' work: 82k customers without reason codes took 3.3 s
    instead of 3.7 s when reads took turns. Also bounds a multi-threaded Dask worker."""
    return threading.BoundedSemaphore(PARTITIONS_AT_ONCE)


@compute_task
def warm_up_model(version_id: int, as_of: datetime) -> None:
    """Trace the model's inference function (about 1 s of CPU) while the first partition
    reads its events, rather than after, when the model would otherwise wait for it."""
    settings = Settings()
    model, predicting = cached_model(settings.database_url, version_id)
    no_history = model.features(events_frame([]), ["warm-up"], pd.Timestamp(as_of))
    with predicting:
        model.scores(no_history, with_reasons=settings.reason_codes)


@io_task
def score_partition(
    run_id: int, version_id: int, as_of: datetime, low: str, high: str | None
) -> int:
    with partitions_in_memory():
        return _score_partition(run_id, version_id, as_of, low, high)


def _score_partition(
    run_id: int, version_id: int, as_of: datetime, low: str, high: str | None
) -> int:
    settings = Settings()
    model, predicting = cached_model(settings.database_url, version_id)
    features = partition_features(model, settings, as_of, (low, high))
    with predicting:
        scores = model.scores(features, with_reasons=settings.reason_codes)
    with service_engine(settings).begin() as connection:
        # A retried partition replaces what an earlier attempt may have staged.
        clear_partition(connection, run_id, (low, high))
        return stage_scores(connection, run_id, scores)


def partition_events(
    model: TrainedModel, settings: Settings, as_of: datetime, customer_range: tuple[str, str | None]
) -> pd.DataFrame:
    """The range's events within the model's lookback."""
    since = as_of - timedelta(days=lookback_days(model, settings))
    with events_engine(settings).connect() as connection:
        columns = resolve_columns(connection, settings.event_source)
        return read_events(connection, columns, as_of, since, customer_range)


def lookback_days(model: TrainedModel, settings: Settings) -> int:
    return model.sequence_config.lookback_days or settings.lookback_days


def partition_features(
    model: TrainedModel, settings: Settings, as_of: datetime, customer_range: tuple[str, str | None]
) -> Features:
    events = partition_events(model, settings, as_of, customer_range)
    rule = active_rule(settings)
    if rule.answered_by_events(lookback_days(model, settings)):
        # The events just read answer the rule: no second scan of the range.
        customer_ids = rule.ids_in(events, as_of)
    else:
        with active_engine(settings).connect() as connection:
            active = active_query(connection, settings, as_of)
            customer_ids = active_customer_ids(connection, active, customer_range)
    return model.features(events, customer_ids, pd.Timestamp(as_of))


@io_task
def publish_scores(run_id: int) -> dict:
    settings = Settings()
    with transaction(service_engine(settings)) as session:
        publish_score_run(session, run_id, settings.score_retention)
    with service_engine(settings).connect() as connection:
        return score_summary(connection, run_id)


@io_task
def mark_run_failed(run_id: int, error: str) -> None:
    with transaction(service_engine(Settings())) as session:
        fail_score_run(session, run_id, error)


def run_partitions(run: dict) -> None:
    """Score every partition; progress goes to a Prefect artifact and, on a terminal, a bar."""
    progress = create_progress_artifact(0.0, description=f"score run {run['run_id']}")
    warm_up = warm_up_model.submit(run["model_version_id"], run["as_of"])
    futures = [
        score_partition.submit(run["run_id"], run["model_version_id"], run["as_of"], low, high)
        for low, high in run["ranges"]
    ]
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
def score(as_of: datetime | None = None, partition_size: int | None = None) -> dict:
    with exclusive("score"):
        run = prepare_score_run(as_of, partition_size or Settings().partition_size)
        try:
            with collections_skip_what_is_alive():
                run_partitions(run)
            summary = publish_scores(run["run_id"])
        except BaseException as error:
            mark_run_failed(run["run_id"], f"{type(error).__name__}: {error}")
            raise
    create_markdown_artifact(score_markdown(summary), key="score-run", description="Score run")
    return summary


def configured_score_flow(settings: Settings):
    """The score flow on the task runner the settings ask for; the flow code is the same."""
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        runner = (
            DaskTaskRunner(address=settings.dask_address)
            if settings.dask_address
            else DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1})
        )
        return score.with_options(task_runner=runner)
    return score

"""The retrain flow: extract -> train and evaluate -> register -> promote or reject."""

import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from db.engine import transaction
from db.models import ModelVersion
from db.readers import export_events
from db.registry import current_champion, promote, reject
from db.source import EventColumns, EventSource
from flows.databases import Databases
from flows.events import data_cutoff, source_columns
from flows.locks import Lease, exclusive
from flows.registry import CHARTS, ModelPackage, metrics_of, publish_charts, register
from flows.report import RetrainOutcome, metrics_markdown
from flows.settings import Settings
from flows.tasks import compute_task, io_task
from llm_model.charts import model_charts
from llm_model.kinds import load_servable
from llm_model.manifest import TrainingPlan
from llm_model.promotion import decide_promotion
from llm_model.training import train_and_evaluate

BASELINES = "baselines"


@dataclass(frozen=True)
class RetrainJob:
    """What the tasks of a retrain need from the settings, resolved once per flow run."""

    databases: Databases
    source: EventSource
    plan: TrainingPlan
    metric: str
    tolerance: float
    reports_dir: Path
    lease_heartbeat: timedelta
    # Contenders packaged beside the winner, into folder/BASELINES/<kind>: the backtest
    # scores them forward too.
    baselines: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetrainJob":
        return cls(
            databases=settings.databases(),
            source=settings.event_source,
            plan=settings.training_plan(),
            metric=settings.selection_metric,
            tolerance=settings.promotion_tolerance,
            reports_dir=Path(settings.reports_dir).resolve(),
            lease_heartbeat=timedelta(seconds=settings.lease_heartbeat_seconds),
        )


@dataclass(frozen=True)
class TrainingWindow:
    """The data cutoff and the source's columns; the retrain reads every event up to the
    cutoff, as the static features cover the whole history."""

    as_of: datetime
    columns: EventColumns


@io_task
def resolve_training_window(job: RetrainJob, as_of: datetime | None) -> TrainingWindow:
    columns = source_columns(job.databases, job.source)
    return TrainingWindow(data_cutoff(job.databases, columns, as_of).to_pydatetime(), columns)


@io_task
def extract_events(job: RetrainJob, window: TrainingWindow, folder: Path) -> Path:
    path = folder / "events.parquet"
    with job.databases.events().connect() as connection:
        rows = export_events(connection, window.columns, path, window.as_of)
    get_run_logger().info("extracted %s events up to %s", f"{rows:,}", window.as_of)
    return path


@io_task
def export_champion(job: RetrainJob, folder: Path) -> int | None:
    """The current champion's package in folder, to be judged on the same holdout."""
    with transaction(job.databases.service()) as session:
        champion = current_champion(session)
        if champion is None:
            return None
        ModelPackage.of_version(champion).save(folder)
        return champion.id


@compute_task
def train_challenger(
    job: RetrainJob, window: TrainingWindow, events: Path, champion_id: int | None, folder: Path
) -> Path:
    """Train every contender and judge them, with the champion, on one holdout; the
    winner's package for the registry, with its charts, goes to folder, and the job's
    baselines' packages to folder/BASELINES."""
    champion = None
    if champion_id is not None:
        package = ModelPackage.load(folder / "champion")
        champion = load_servable(package.artifact, package.manifest)
    result = train_and_evaluate(
        pd.read_parquet(events),
        pd.Timestamp(window.as_of),
        job.plan,
        champion,
        # A live progress bar on a terminal; one line per epoch in logs.
        verbose="auto" if sys.stdout.isatty() else 2,
    )
    if result.data.skipped_cutoffs:
        get_run_logger().warning(
            "skipped cutoffs before the first event: %s", ", ".join(result.data.skipped_cutoffs)
        )
    challenger = folder / "challenger"
    evaluation = result.evaluation
    winner = evaluation.winner(job.metric)
    charts = model_charts(evaluation.labels, evaluation.scores, winner, challenger / CHARTS)
    names = tuple(chart.name for chart in charts)
    package = ModelPackage.of(result, winner, job.metric, window.as_of, champion_id, names)
    for kind in job.baselines:
        if kind in result.contenders.models:  # one that could not be trained has no model
            baseline = ModelPackage.of(result, kind, job.metric, window.as_of, champion_id)
            baseline.save(folder / BASELINES / kind)
    return package.save(challenger)


@io_task
def register_challenger(job: RetrainJob, challenger: Path) -> int:
    with transaction(job.databases.service()) as session:
        version = register(session, ModelPackage.load(challenger))
        charts = publish_charts(session, version, challenger, job.reports_dir)
    get_run_logger().info("registered model version %s; charts in %s", version.id, charts[0])
    return version.id


@io_task
def promote_or_reject(
    job: RetrainJob, version_id: int, force: bool, lease: Lease
) -> RetrainOutcome:
    """Apply the champion/challenger rule; the champion switches in one transaction, only
    while this run holds the retrain lease."""
    with transaction(job.databases.service()) as session:
        lease.check(session)
        version = session.get(ModelVersion, version_id)
        evaluation = metrics_of(version).evaluation()
        decision = decide_promotion(evaluation, job.metric, job.tolerance, force)
        if decision.promote:
            promote(session, version, decision.reason)
        else:
            reject(session, version, decision.reason)
    get_run_logger().info("model version %s %s: %s", version_id, version.status, decision.reason)
    return RetrainOutcome(
        version_id, version.kind, version.status, decision.reason, evaluation.table
    )


@io_task
def publish_model_card(job: RetrainJob, version_id: int) -> str:
    with transaction(job.databases.service()) as session:
        markdown = metrics_markdown(session.get(ModelVersion, version_id), embed_charts=True)
    create_markdown_artifact(markdown, key="model-card", description="Retrain model card")
    return markdown


def retrain_model(
    job: RetrainJob, as_of: datetime | None, force_promote: bool, folder: Path, lease: Lease
) -> RetrainOutcome:
    """The retrain's steps, working in `folder`; the caller holds the retrain `lease`."""
    window = resolve_training_window(job, as_of)
    events = extract_events(job, window, folder)
    champion_id = export_champion(job, folder / "champion")
    challenger = train_challenger(job, window, events, champion_id, folder)
    version_id = register_challenger(job, challenger)
    return promote_or_reject(job, version_id, force_promote, lease)


@flow(name="retrain", log_prints=True)
def retrain(
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    cell: str | None = None,
    epochs: int | None = None,
    snapshots: int | None = None,
    stride_days: int | None = None,
    force_promote: bool = False,
) -> RetrainOutcome:
    settings = Settings().overridden(
        horizon_days=horizon_days,
        cell=cell,
        epochs=epochs,
        n_snapshots=snapshots,
        snapshot_stride_days=stride_days,
    )
    job = RetrainJob.from_settings(settings)
    with (
        exclusive("retrain", job.databases, job.lease_heartbeat) as lease,
        tempfile.TemporaryDirectory() as temporary,
    ):
        outcome = retrain_model(job, as_of, force_promote, Path(temporary), lease)
    return replace(outcome, card=publish_model_card(job, outcome.version_id))

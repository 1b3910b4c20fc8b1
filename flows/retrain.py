"""The retrain flow: read a sample's training set -> train and evaluate -> register ->
promote or reject."""

import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from db.engine import transaction
from db.models import ModelVersion
from db.registry import current_champion, promote, reject
from flows.leases import held_by_this_run
from flows.tasks import compute_task, io_task
from llm_model.inputs import save_inputs
from llm_model.promotion import decide_version_promotion
from service.leases import Lease
from service.registry import ModelPackage, metrics_of, publish_charts, register
from service.rendering import metrics_markdown
from service.results import RetrainOutcome
from service.retraining import (
    CHAMPION_PACKAGE,
    RetrainJob,
    TrainingWindow,
    read_training_inputs,
    train_packages,
    training_window,
)
from service.settings import RetrainRequest, current_settings
from service.workspace import run_folder


@io_task
def resolve_training_window(job: RetrainJob, as_of: datetime | None) -> TrainingWindow:
    return training_window(job, as_of, get_run_logger())


@io_task
def read_training_data(
    job: RetrainJob, window: TrainingWindow, champion_id: int | None, folder: Path
) -> Path:
    """The training set (and the champion's holdout features) saved in folder/inputs."""
    logger = get_run_logger()
    champion = None
    if champion_id is not None:
        champion = ModelPackage.load(folder / CHAMPION_PACKAGE).manifest
    inputs = read_training_inputs(job, window, champion, logger)
    logger.info(
        "read %s events of %s customers up to %s",
        f"{inputs.n_events:,}",
        f"{inputs.n_customers:,}",
        window.as_of,
    )
    return save_inputs(inputs, folder / "inputs")


@io_task
def export_champion(job: RetrainJob, folder: Path) -> int | None:
    """The current champion's package in folder, to be judged on the same holdout."""
    with transaction(job.databases.service()) as session:
        champion = current_champion(session)
        if champion is None:
            return None
        ModelPackage.of_version(champion, job.databases.signing_key).save(folder / CHAMPION_PACKAGE)
        return champion.id


@compute_task
def train_challenger(
    job: RetrainJob, window: TrainingWindow, inputs: Path, champion_id: int | None, folder: Path
) -> Path:
    # A progress bar per network on a terminal; one line per network in the run's logs.
    bars = sys.stdout.isatty()
    return train_packages(job, window, inputs, champion_id, folder, get_run_logger(), bars)


@io_task
def register_challenger(job: RetrainJob, challenger: Path) -> int:
    with transaction(job.databases.service()) as session:
        version = register(session, ModelPackage.load(challenger), job.databases.signing_key)
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
        metrics = metrics_of(version)
        evaluation = metrics.evaluation()
        decision = decide_version_promotion(
            evaluation, metrics.value_evaluation(), job.metric, job.tolerance, force
        )
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
    champion_id = export_champion(job, folder)
    inputs = read_training_data(job, window, champion_id, folder)
    challenger = train_challenger(job, window, inputs, champion_id, folder)
    version_id = register_challenger(job, challenger)
    return promote_or_reject(job, version_id, force_promote, lease)


@flow(name="retrain", log_prints=True)
def retrain(request: RetrainRequest = RetrainRequest()) -> RetrainOutcome:  # noqa: B008
    settings = current_settings().for_run(request)
    job = RetrainJob.from_settings(settings)
    with (
        held_by_this_run("retrain", job.databases, job.lease_heartbeat) as lease,
        run_folder(settings.work_dir, "retrain") as folder,
    ):
        outcome = retrain_model(job, request.as_of, request.force_promote, folder, lease)
    return replace(outcome, card=publish_model_card(job, outcome.version_id))

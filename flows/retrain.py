"""The retrain flow: extract -> build training set -> train -> evaluate -> register -> promote."""

import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from db.engine import transaction
from db.models import ModelVersion
from db.readers import export_events
from db.registry import attach_charts, current_champion, promote, register_model, reject
from db.source import resolve_columns
from flows.report import metrics_markdown
from flows.resources import data_cutoff, events_engine, exclusive, load_model, service_engine
from flows.settings import Settings
from flows.tasks import compute_task, io_task
from llm_model.charts import model_charts
from llm_model.model import ModelConfig, model_to_bytes
from llm_model.promotion import decide_promotion
from llm_model.sequences import SequenceConfig
from llm_model.training import Evaluation, train_and_evaluate


@io_task
def resolve_training_window(as_of: datetime | None, horizon_days: int) -> dict:
    """The data cutoff and the oldest event any snapshot needs."""
    settings = Settings()
    cutoff = data_cutoff(settings, as_of)
    oldest_cutoff = cutoff - timedelta(
        days=horizon_days + settings.stride_days(horizon_days) * (settings.n_snapshots - 1)
    )
    return {
        "as_of": cutoff.to_pydatetime(),
        "since": (oldest_cutoff - timedelta(days=settings.lookback_days)).to_pydatetime(),
    }


@io_task
def extract_events(as_of: datetime, since: datetime, folder: str) -> str:
    settings = Settings()
    path = Path(folder) / "events.parquet"
    with events_engine(settings).connect() as connection:
        columns = resolve_columns(connection, settings.event_source)
        rows = export_events(connection, columns, path, cutoff=as_of, since=since)
    get_run_logger().info("extracted %s events from %s to %s", f"{rows:,}", since, as_of)
    return str(path)


@compute_task
def train_challenger(
    events_path: str, as_of: datetime, horizon_days: int, cell: str, epochs: int
) -> int:
    """Train, evaluate against the champion and baselines, and register the candidate."""
    settings = Settings()
    engine = service_engine(settings)
    with transaction(engine) as session:
        champion_row = current_champion(session)
    champion = load_model(champion_row) if champion_row is not None else None
    sequence_config = SequenceConfig(
        max_len=settings.max_len,
        target_event=settings.target_event,
        horizon_days=horizon_days,
        lookback_days=settings.lookback_days,
    )
    model_config = ModelConfig(cell=cell, units=settings.units, epochs=epochs, seed=settings.seed)
    result = train_and_evaluate(
        pd.read_parquet(events_path),
        pd.Timestamp(as_of),
        sequence_config,
        model_config,
        settings.n_snapshots,
        settings.stride_days(horizon_days),
        champion,
        # A live progress bar on a terminal; one line per epoch in logs.
        verbose="auto" if sys.stdout.isatty() else 2,
    )
    with transaction(engine) as session:
        version = register_model(
            session,
            artifact=model_to_bytes(result.trained.network),
            trained_as_of=as_of,
            horizon_days=horizon_days,
            cell=cell,
            config={
                "sidecar": result.trained.sidecar(),
                "n_snapshots": settings.n_snapshots,
                "snapshot_stride_days": settings.stride_days(horizon_days),
            },
            metrics={
                **result.evaluation.to_dict(),
                "champion_version_id": champion_row.id if champion_row else None,
                "calibration_log_loss": result.calibration,
                "data": result.data,
            },
        )
    charts = model_charts(
        result.evaluation.labels,
        result.evaluation.scores,
        "model",
        Path(settings.reports_dir) / f"model-{version.id}",
    )
    with transaction(engine) as session:
        attach_charts(session, version.id, [str(path) for path in charts])
    get_run_logger().info("registered model version %s; charts in %s", version.id, charts[0].parent)
    return version.id


@io_task
def promote_or_reject(version_id: int, force: bool) -> dict:
    """Apply the champion/challenger rule; the champion switches in one transaction."""
    settings = Settings()
    with transaction(service_engine(settings)) as session:
        version = session.get(ModelVersion, version_id)
        evaluation = Evaluation(
            table=version.metrics["table"], baselines=tuple(version.metrics["baselines"])
        )
        decision = decide_promotion(evaluation, settings.promotion_tolerance, force)
        if decision.promote:
            promote(session, version, decision.reason)
        else:
            reject(session, version, decision.reason)
    get_run_logger().info("model version %s %s: %s", version_id, version.status, decision.reason)
    return {
        "version_id": version_id,
        "status": version.status,
        "reason": decision.reason,
        "table": evaluation.table,
    }


@compute_task
def publish_model_card(version_id: int) -> str:
    settings = Settings()
    with transaction(service_engine(settings)) as session:
        version = session.get(ModelVersion, version_id)
        markdown = metrics_markdown(version)
    create_markdown_artifact(markdown, key="model-card", description="Retrain model card")
    return markdown


@flow(name="retrain", log_prints=True)
def retrain(
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    cell: str | None = None,
    epochs: int | None = None,
    force_promote: bool = False,
) -> dict:
    settings = Settings()
    horizon_days = horizon_days or settings.horizon_days
    with exclusive("retrain"):
        window = resolve_training_window(as_of, horizon_days)
        with tempfile.TemporaryDirectory() as folder:
            events_path = extract_events(window["as_of"], window["since"], folder)
            version_id = train_challenger(
                events_path,
                window["as_of"],
                horizon_days,
                cell or settings.cell,
                epochs or settings.epochs,
            )
        decision = promote_or_reject(version_id, force_promote)
    return {**decision, "card": publish_model_card(version_id)}

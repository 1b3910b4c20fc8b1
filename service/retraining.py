"""A retrain's plain work: what it needs from the settings, its data cutoff, the events it
reads, and every contender trained and judged into packages for the registry. The retrain
flow's tasks call these; the backtest replays them."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from db.readers import export_events
from db.source import EventColumns, EventSource
from llm_model.charts import model_charts
from llm_model.kinds import load_servable
from llm_model.manifest import TrainingPlan
from llm_model.tensorflow_log import load_tensorflow_quietly
from service.databases import Databases
from service.events import Logger, data_cutoff, source_columns
from service.registry import CHARTS, ModelPackage
from service.settings import Settings

# Where a retrain's folder holds the champion's package and the baselines' packages.
CHAMPION_PACKAGE, BASELINES = "champion", "baselines"


@dataclass(frozen=True)
class RetrainJob:
    """What the tasks of a retrain need from the settings, resolved once per run."""

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


def training_window(job: RetrainJob, as_of: datetime | None, logger: Logger) -> TrainingWindow:
    columns = source_columns(job.databases, job.source)
    return TrainingWindow(data_cutoff(job.databases, columns, as_of, logger), columns)


def extract_events(job: RetrainJob, window: TrainingWindow, folder: Path) -> tuple[Path, int]:
    """The window's events in a Parquet file in `folder`, and their number."""
    path = folder / "events.parquet"
    with job.databases.events().connect() as connection:
        rows = export_events(connection, window.columns, path, window.as_of)
    return path, rows


def train_packages(
    job: RetrainJob,
    window: TrainingWindow,
    events: Path,
    champion_id: int | None,
    folder: Path,
    verbose: int | str,
    logger: Logger,
) -> Path:
    """Train every contender and judge them, with the champion (its package in
    folder/CHAMPION_PACKAGE), on one holdout; the winner's package, with its charts, goes to
    folder/challenger, and the job's baselines' packages to folder/BASELINES."""
    load_tensorflow_quietly()
    # TensorFlow loads with the trainer: the retrain's other steps, and the modules that
    # import this one, do without it.
    from llm_model.training import train_and_evaluate

    champion = None
    if champion_id is not None:
        package = ModelPackage.load(folder / CHAMPION_PACKAGE)
        champion = load_servable(package.artifact, package.manifest)
    result = train_and_evaluate(
        pd.read_parquet(events), pd.Timestamp(window.as_of), job.plan, champion, verbose
    )
    if result.data.skipped_cutoffs:
        logger.warning(
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

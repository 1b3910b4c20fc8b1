"""A retrain's plain work: what it needs from the settings, its data cutoff, the training
set of a bounded sample of customers read a chunk at a time, and every contender trained and
judged into packages for the registry. The retrain flow's tasks call these; the backtest
replays them."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection

from db.customers import CustomerSample, training_sample
from db.readers import read_events
from db.source import CustomerList, EventColumns, EventSource, TypeSpan, event_types_seen
from llm_model.charts import model_charts
from llm_model.inputs import TrainingInputs, level_inputs, load_inputs
from llm_model.kinds import load_servable
from llm_model.level import LevelInputs
from llm_model.manifest import ModelManifest, TrainingPlan
from llm_model.sequences import (
    Features,
    Vocabulary,
    build_features,
    build_snapshots,
    join_training_set,
    plan_snapshots,
)
from llm_model.tensorflow_log import load_tensorflow_quietly
from service.databases import Databases
from service.events import Logger, data_cutoff, source_columns
from service.registry import CHARTS, ModelPackage
from service.rendering import level_markdown
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
    sample_size: int
    # Contenders packaged beside the winner, into folder/BASELINES/<kind>, each with the
    # value model of the kind it names (None: the best beside it): the backtest scores them
    # forward too.
    baselines: dict[str, str | None] = field(default_factory=dict)

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
            sample_size=settings.training_sample_size,
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


# Customers whose events one read brings in: an id list every database's planner turns
# into index lookups, and a few hundred thousand events in memory at a time.
READ_CUSTOMERS = 5_000


def read_training_inputs(
    job: RetrainJob,
    window: TrainingWindow,
    champion: ModelManifest | None,
    logger: Logger,
    chunk_customers: int = READ_CUSTOMERS,
) -> TrainingInputs:
    """The training set of the job's sample of customers (every customer where there are
    no more), read a chunk of customers at a time: memory follows the sample, not the
    customer base. With the champion's features of the holdout customers, to judge it on
    the same holdout."""
    sequence = job.plan.sequence
    with job.databases.events().connect() as connection:
        sample = training_sample(connection, window.columns, window.as_of, job.sample_size)
        logger.info(sample_line(sample, job.sample_size))
        chunks = [
            CustomerList(tuple(sample.ids[start : start + chunk_customers]))
            for start in range(0, len(sample.ids), chunk_customers)
        ]
        seen = types_seen(connection, window, chunks)
        if missing := missing_amounts_line(seen, sequence.target_event):
            logger.warning(missing)
        first_event = min((span.first for span in seen.values()), default=None)
        plan = plan_snapshots(
            pd.Timestamp(window.as_of),
            sequence,
            job.plan.n_snapshots,
            job.plan.stride_days,
            first_event and pd.Timestamp(first_event),
        )
        newest_train = plan.train_cutoffs[-1]
        vocab = Vocabulary.of_types(t for t, span in seen.items() if span.first <= newest_train)
        parts, champion_parts, reference_parts, level_parts = [], [], [], []
        for chunk in chunks:
            events = read_events(connection, window.columns, window.as_of, customers=chunk)
            parts.append(build_snapshots(events, plan, vocab, sequence))
            level_parts.append(
                level_inputs(events, plan.holdout_cutoff, pd.Timestamp(window.as_of), job.plan)
            )
            present = sorted(events["customer_id"].unique())
            reference_parts.append(
                build_features(events, present, pd.Timestamp(window.as_of), vocab, sequence)
            )
            if champion is not None:
                holdout = parts[-1][-1].features.customer_ids
                champion_parts.append(
                    build_features(
                        events, holdout, plan.holdout_cutoff, champion.vocabulary, champion.sequence
                    )
                )
    return TrainingInputs(
        training=join_training_set(parts, plan, vocab, sequence),
        champion_holdout=Features.concat(champion_parts) if champion_parts else None,
        reference=Features.concat(reference_parts),
        n_events=sum(span.events for span in seen.values()),
        n_customers=len(sample.ids),
        population=sample.population,
        first_event=pd.Timestamp(first_event),
        level=LevelInputs.concat(level_parts),
    )


def types_seen(
    connection: Connection, window: TrainingWindow, chunks: list[CustomerList]
) -> dict[str | None, TypeSpan]:
    """Per event type, the first event and the number of events of the chunks' customers."""
    seen: dict[str | None, TypeSpan] = {}
    for chunk in chunks:
        for event_type, span in event_types_seen(
            connection, window.columns, window.as_of, chunk
        ).items():
            known = seen.get(event_type)
            seen[event_type] = span if known is None else known.joined(span)
    return seen


def missing_amounts_line(seen: dict[str | None, TypeSpan], target: str) -> str | None:
    """What the value models' training makes of target events without an amount; None
    where every one has its amount."""
    span = seen.get(target)
    if span is None or not span.missing_amounts:
        return None
    return (
        f"{span.missing_amounts:,} of the {span.events:,} {target!r} events read have no "
        "amount: each counts as 0 spend in the value models' training"
    )


def sample_line(sample: CustomerSample, size: int) -> str:
    if sample.everyone:
        return (
            f"training on every one of the {sample.population:,} customers with events "
            f"(the sample size {size:,} covers them all)"
        )
    return (
        f"training on a sample of {len(sample.ids):,} of the {sample.population:,} customers "
        "with events, the same ones on every run (the first by md5 of the id)"
    )


def train_packages(
    job: RetrainJob,
    window: TrainingWindow,
    inputs: Path,
    champion_id: int | None,
    folder: Path,
    logger: Logger,
    progress_bars: bool,
) -> Path:
    """Train every contender on the inputs saved in `inputs` and judge them, with the
    champion (its package in folder/CHAMPION_PACKAGE), on one holdout; the winner's package,
    with its charts, goes to folder/challenger, and the job's baselines' packages to
    folder/BASELINES. Each network's training is one line in `logger` and, with
    `progress_bars`, a progress bar on the terminal."""
    load_tensorflow_quietly()
    # TensorFlow loads with the trainer: the retrain's other steps, and the modules that
    # import this one, do without it.
    from llm_model.progress import TrainingProgress
    from llm_model.training import train_on

    verbose = partial(TrainingProgress, logger=logger, bar=progress_bars)

    champion = None
    if champion_id is not None:
        package = ModelPackage.load(folder / CHAMPION_PACKAGE)
        champion = load_servable(package.artifact, package.manifest)
    result = train_on(load_inputs(inputs), pd.Timestamp(window.as_of), job.plan, champion, verbose)
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
    value = package.metrics.value
    if value is not None and value.winner is None:
        reasons = "; ".join(f"{kind}: {why}" for kind, why in value.skipped.items())
        logger.warning("value is off, expected_value stays NULL: no value model (%s)", reasons)
    elif value is not None and value.level is not None:
        logger.info(level_markdown(value.level))
    for kind, value_kind in job.baselines.items():
        if kind in result.contenders.models:  # one that could not be trained has no model
            baseline = ModelPackage.of(
                result, kind, job.metric, window.as_of, champion_id, value_kind=value_kind
            )
            baseline.save(folder / BASELINES / kind)
    return package.save(challenger)

"""The walk-forward backtest: the service replayed over past cutoffs in a scratch database,
each cutoff judged against what its customers really did afterwards.

At each cutoff the retrain runs with the service's settings on the events at or before it
(the champion rule included: the scratch database's champion carries from cutoff to
cutoff). Then the champion, and each baseline contender that retrain fitted (logistic
regression and gradient boosting, registered beside its winner as candidates), score the
customers active at the cutoff in score runs of their own, and every run is judged against
the target events in its horizon as `propensity evaluate` judges published runs. Scoring
the baselines through score runs, rather than in memory, keeps one way of judging: every
row is a published run's realized outcome.

The scratch database is a new SQLite file (temporary unless kept): models, score runs,
outcomes and a copy of the customers table (who is active, for the is_active rule) go
there; events are read in place from the event source. Production's model_versions,
score_runs and scores are never written.
"""

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from rich.progress import Progress

from db.engine import transaction
from db.source import EventSource
from flows.leases import held_by_this_run
from flows.retrain import retrain_model
from flows.score import score_and_publish
from flows.task_runner import partition_threads
from flows.tasks import io_task
from llm_model.manifest import TrainingPlan
from llm_model.selection import CHAMPION
from service.databases import Databases, reachable_engine
from service.leases import Lease
from service.outcomes import evaluate_runs
from service.partitions import ScoreJob
from service.registry import ModelPackage, register
from service.rendering import backtest_record, evaluation_line, figure, rounded
from service.results import Backtest, BacktestRow, RetrainOutcome, RunEvaluation, ScoreSummary
from service.retraining import BASELINES, RetrainJob
from service.settings import BacktestRequest, Settings, current_settings
from service.walk_forward import (
    WalkForward,
    backtest_cutoffs,
    default_csv_path,
    prepare_scratch_database,
    scratch_settings,
)
from service.workspace import run_folder


@dataclass(frozen=True)
class BacktestJobs:
    """The retrain and score jobs of the service's settings on the scratch database, the
    retrain lease held there, and a folder for the retrains' files."""

    retrain: RetrainJob
    score: ScoreJob
    retrain_lease: Lease
    partition_size: int
    folder: Path


@io_task
def plan_cutoffs(
    databases: Databases,
    source: EventSource,
    plan: TrainingPlan,
    start: datetime,
    end: datetime,
    every_days: int,
) -> WalkForward:
    walk = backtest_cutoffs(databases, source, start, end, every_days, plan)
    for note in walk.skipped:
        get_run_logger().warning(note)
    return walk


@io_task
def prepare_scratch(production: Databases, scratch: Settings) -> int:
    return prepare_scratch_database(production, scratch)


def baselines_and_values(plan: TrainingPlan) -> dict[str, str]:
    """The baselines every cutoff also scores forward, each with one value contender, so
    that every value contender is judged forward: the two-stage spend model on logistic
    regression's probabilities, gradient boosting's Poisson spend model beside its own
    propensity, and the ZILN network beside the plain recurrent model."""
    return {"logistic": "two_stage", "gbm": "gbm_poisson", plan.network.cell: "ziln"}


@contextmanager
def scratch_jobs(settings: Settings, database_path: str | None) -> Iterator[BacktestJobs]:
    """The service's jobs on a new SQLite database (at `database_path`, else a temporary
    one), reading production's events, with the scratch database's retrain and score leases
    held."""
    with run_folder(settings.work_dir, "backtest") as folder:
        database = Path(database_path).resolve() if database_path else folder / "backtest.db"
        scratch = scratch_settings(settings, database, folder)
        copied = prepare_scratch(settings.databases(), scratch)
        get_run_logger().info("scratch database %s (%s customers copied)", database, copied)
        retrain = RetrainJob.from_settings(scratch)
        retrain = replace(retrain, baselines=baselines_and_values(retrain.plan))
        score = ScoreJob.from_settings(scratch)
        try:
            with (
                held_by_this_run("retrain", retrain.databases, retrain.lease_heartbeat) as lease,
                held_by_this_run("score", score.databases, score.lease_heartbeat),
            ):
                yield BacktestJobs(retrain, score, lease, scratch.partition_size, folder)
        finally:
            # Engines are cached per URL: the file's pooled connections close with the run.
            reachable_engine(scratch.database_url).dispose()


@io_task
def register_baselines(job: RetrainJob, retrained: RetrainOutcome, folder: Path) -> dict[str, int]:
    """The model version of each baseline the retrain fitted: its winner's for the winner's
    kind, the others registered here as candidates."""
    versions = {}
    with transaction(job.databases.service()) as session:
        for kind in job.baselines:
            saved = folder / BASELINES / kind
            if kind == retrained.kind:
                versions[kind] = retrained.version_id
            elif saved.is_dir():
                package = ModelPackage.load(saved)
                versions[kind] = register(session, package, job.databases.signing_key).id
    return versions


@io_task
def judge(jobs: BacktestJobs, run: ScoreSummary) -> RunEvaluation:
    """The run's realized outcome, as `propensity evaluate --run-id` stores it."""
    (evaluation,) = evaluate_runs(jobs.score.databases, jobs.score.source, run.score_run_id)
    if evaluation.outcome is None:  # walk_forward keeps only cutoffs whose horizon passed
        raise RuntimeError(evaluation_line(evaluation))
    return evaluation


def replay_cutoff(jobs: BacktestJobs, cutoff: datetime, folder: Path) -> list[BacktestRow]:
    """Retrain at the cutoff, score with the champion and each baseline, judge each run; a
    baseline that is the champion is judged by the champion's run."""
    retrained = retrain_model(jobs.retrain, cutoff, False, folder, jobs.retrain_lease)
    champion = score_and_publish(jobs.score, cutoff, jobs.partition_size)
    runs = {CHAMPION: champion}
    for kind, version_id in register_baselines(jobs.retrain, retrained, folder).items():
        runs[kind] = (
            champion
            if version_id == champion.model_version_id
            else score_and_publish(jobs.score, cutoff, jobs.partition_size, version_id)
        )
    # A judged outcome is final: a run serving two models is judged once.
    distinct = {run.score_run_id: run for run in runs.values()}
    judged = {run_id: judge(jobs, run) for run_id, run in distinct.items()}
    return [
        BacktestRow(
            cutoff,
            model,
            judged[run.score_run_id].run.kind,
            run.model_version_id,
            run.score_run_id,
            judged[run.score_run_id].outcome,
            (judged[run.score_run_id].run.model_config or {}).get("value_kind"),
        )
        for model, run in runs.items()
    ]


def replay(jobs: BacktestJobs, cutoffs: list[datetime]) -> list[BacktestRow]:
    """Every cutoff in turn; progress goes to a Prefect artifact and, on a terminal, a bar."""
    logger = get_run_logger()
    progress = create_progress_artifact(0.0, description="backtest cutoffs replayed")
    rows = []
    with Progress(disable=not sys.stdout.isatty()) as bar:
        replayed = bar.add_task("backtest cutoffs", total=len(cutoffs))
        for done, cutoff in enumerate(cutoffs, start=1):
            # The retrain's copy of the events goes once its cutoff is judged.
            with tempfile.TemporaryDirectory(dir=jobs.folder) as work:
                judged = replay_cutoff(jobs, cutoff, Path(work))
            logger.info(
                "cutoff %s: %s",
                f"{cutoff:%Y-%m-%d}",
                "; ".join(f"{r.model} AUC {figure(r.outcome.roc_auc)}" for r in judged),
            )
            rows += judged
            update_progress_artifact(progress, 100.0 * done / len(cutoffs))
            bar.advance(replayed)
    return rows


@io_task
def publish_backtest(result: Backtest) -> Backtest:
    """The table as a CSV file and a Prefect table artifact."""
    records = [backtest_record(row) for row in result.rows]
    result.csv_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_csv(result.csv_path, index=False)
    create_table_artifact(
        [rounded(record) for record in records],
        key="backtest",
        description="Walk-forward backtest: realized outcomes",
    )
    return result


# The scratch database is a file on this machine: partitions are scored here, whatever the
# task runner setting says.
@flow(name="backtest", log_prints=True, task_runner=partition_threads())
def backtest(request: BacktestRequest) -> Backtest:
    settings = current_settings().for_run(request)
    walk = plan_cutoffs(
        settings.databases(),
        settings.event_source,
        settings.training_plan(),
        request.start,
        request.end,
        request.every_days,
    )
    with scratch_jobs(settings, request.database_path) as jobs:
        rows = replay(jobs, walk.cutoffs)
    csv_path = request.csv_path or default_csv_path(settings, request)
    return publish_backtest(Backtest(rows, walk.skipped, Path(csv_path).resolve()))

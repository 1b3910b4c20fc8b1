"""Score runs: start (one at a time), stage partition scores, publish atomically, prune.

Consumers read current_propensity_scores, which shows only the newest succeeded run, so a
running or failed run is never visible and publication is a single status flip.
"""

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, case, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from db.bulk import bulk_insert
from db.errors import DataLayerError
from db.models import (
    ModelVersion,
    PropensityScore,
    PropensityScoreStaging,
    ScoreRun,
    ScoreRunDrift,
    ScoreRunOutcome,
    ScoreRunOutcomeDecile,
    ScoreRunStatus,
)
from db.source import CustomerRange, in_range
from db.timestamps import utc_now

REASONS = ["reason_1", "reason_2", "reason_3"]
REASON_WEIGHTS = ["reason_1_weight", "reason_2_weight", "reason_3_weight"]
STAGED_COLUMNS = [
    "score_run_id",
    "customer_id",
    "propensity",
    *REASONS,
    *REASON_WEIGHTS,
    "expected_value",
]
N_DECILES = 10


class ScoreRunConflict(DataLayerError):
    pass


class InSampleRun(DataLayerError):
    """A score run its model's training labels would see into, not asked for as such."""


def start_score_run(
    session: Session,
    as_of: datetime,
    model_version_id: int,
    flow_run_id: str | None,
    in_sample: bool = False,
) -> int:
    """Create a `running` run, refusing while another one runs, and refusing an as_of
    before the model's training cutoff unless `in_sample` says it is deliberate: the
    model's training labels reach into such a run's horizon."""
    # Locking the model row serialises concurrent starts on PostgreSQL and MariaDB; SQLite
    # serialises the insert below by its database lock.
    trained_as_of = session.scalar(
        select(ModelVersion.trained_as_of)
        .where(ModelVersion.id == model_version_id)
        .with_for_update()
    )
    peeks = trained_as_of is not None and as_of < trained_as_of
    if peeks and not in_sample:
        raise InSampleRun(
            f"scoring as of {as_of:%Y-%m-%d %H:%M} is before model version {model_version_id}'s "
            f"training cutoff ({trained_as_of:%Y-%m-%d %H:%M}): its training labels reach into "
            "this run's horizon; score as of a later date, or pass --in-sample to score anyway "
            "(the run is marked in sample and never judged as a forward result)"
        )
    # Checked before the insert, so a refused start never leaves a row behind, even for a
    # caller that catches the conflict and commits.
    other = session.scalar(
        select(ScoreRun.id).where(ScoreRun.status == ScoreRunStatus.RUNNING).limit(1)
    )
    if other is not None:
        raise ScoreRunConflict(
            f"score run {other} is still running; wait for it to finish (or fail) and retry"
        )
    run = ScoreRun(
        as_of=as_of,
        model_version_id=model_version_id,
        started_at=utc_now(),
        status=ScoreRunStatus.RUNNING,
        flow_run_id=flow_run_id,
        in_sample=peeks,
    )
    session.add(run)
    session.flush()
    return run.id


def abandon_dead_runs(session: Session) -> list[int]:
    """Mark the runs still `running` abandoned and delete every staged row: theirs, and any
    that a failed run's partition wrote after the failure was recorded. Only for a caller
    holding the score lease, as every score run is started under it: no other run is alive.
    The ids of the runs abandoned."""
    running = select(ScoreRun.id).where(ScoreRun.status == ScoreRunStatus.RUNNING)
    dead = list(session.scalars(running))
    session.execute(
        update(ScoreRun)
        .where(ScoreRun.id.in_(dead))
        .values(
            status=ScoreRunStatus.ABANDONED,
            finished_at=utc_now(),
            error="abandoned: found running by the next score run, which holds the score "
            "lease: its process ended without finishing it (killed, or its host lost)",
        )
    )
    session.execute(delete(PropensityScoreStaging))
    return dead


def stage_scores(connection: Connection, score_run_id: int, scores: pd.DataFrame) -> int:
    """Bulk-write one partition's scores (customer_id, propensity, reason_1..3 and their
    weights, expected_value where the model has a value model) while its run is running: a
    partition finishing after its run failed or was abandoned stages nothing
    (ScoreRunConflict; the caller's rollback takes the rows back)."""
    frame = scores.assign(score_run_id=score_run_id).reindex(columns=STAGED_COLUMNS)
    bulk_insert(connection, PropensityScoreStaging.__table__, frame)
    # Checked after the write, in its transaction: the share lock on the run's row (on
    # SQLite the write lock the insert took) makes a concurrent fail_score_run wait for the
    # commit and then delete these rows, or this check wait for the failure and refuse.
    status = connection.scalar(
        select(ScoreRun.status).where(ScoreRun.id == score_run_id).with_for_update(read=True)
    )
    if status != ScoreRunStatus.RUNNING:
        raise ScoreRunConflict(
            f"score run {score_run_id} is {status or 'gone'}: its scores are not staged"
        )
    return len(frame)


@dataclass(frozen=True)
class Publication:
    """A published run's customers, and the earlier runs of its as_of and model it replaced."""

    n_scored: int
    replaced: tuple[int, ...] = ()


def publish_score_run(session: Session, score_run_id: int, keep_succeeded: int) -> Publication:
    """Rank the staged scores and flip the run to succeeded, all in the caller's transaction.

    A previous run for the same as_of and model is replaced (its row, scores, outcome and
    drift go), so reruns never duplicate rows; the publication names it.
    """
    run = session.get(ScoreRun, score_run_id, with_for_update=True, populate_existing=True)
    if run is None:
        raise ScoreRunConflict(f"score run {score_run_id} does not exist (replaced or pruned)")
    if run.status == ScoreRunStatus.SUCCEEDED:
        # A retried publication whose first commit went through: nothing left to do.
        return Publication(run.n_scored)
    if run.status != ScoreRunStatus.RUNNING:
        raise ScoreRunConflict(
            f"score run {score_run_id} is {run.status} ({run.error}); it cannot be published"
        )
    n_scored = rank_staged_scores(session, score_run_id)
    if not n_scored:
        # Publishing nothing would empty current_propensity_scores (and replace a good rerun).
        raise ScoreRunConflict(
            f"score run {score_run_id} has no staged scores; refusing to publish an empty run"
        )
    replaced = superseded_runs(session, run)
    delete_runs(session, replaced)
    run.status, run.finished_at, run.n_scored = ScoreRunStatus.SUCCEEDED, utc_now(), n_scored
    session.flush()
    prune_runs(session, keep_succeeded)
    return Publication(n_scored, tuple(replaced))


PUBLISHED_COLUMNS = [
    "score_run_id",
    "customer_id",
    "propensity",
    "decile",
    "rank",
    *REASONS,
    *REASON_WEIGHTS,
    "expected_value",
    "value_decile",
]


def rank_staged_scores(session: Session, score_run_id: int) -> int:
    """Move a run's staged scores into propensity_scores with decile and rank, and the value
    decile where they have an expected value; their count."""
    staged = PropensityScoreStaging
    order = (staged.propensity.desc(), staged.customer_id)
    value_order = (staged.expected_value.desc(), staged.customer_id)
    ranked = select(
        staged.score_run_id,
        staged.customer_id,
        staged.propensity,
        func.ntile(N_DECILES).over(order_by=order),
        func.row_number().over(order_by=order),
        *(getattr(staged, column) for column in [*REASONS, *REASON_WEIGHTS, "expected_value"]),
        # A run's rows all have an expected value or none has (its model has a value model
        # or not): the deciles are never cut among NULLs.
        case(
            (staged.expected_value.is_(None), None),
            else_=func.ntile(N_DECILES).over(order_by=value_order),
        ),
    ).where(staged.score_run_id == score_run_id)
    published = session.execute(
        insert(PropensityScore).from_select(PUBLISHED_COLUMNS, ranked),
        # SQLAlchemy reports an INSERT's row count only when asked to.
        execution_options={"preserve_rowcount": True},
    )
    clear_staged(session, score_run_id)
    return published.rowcount


def superseded_runs(session: Session, run: ScoreRun) -> list[int]:
    """Succeeded runs for the same as_of and model, which the run replaces."""
    return list(
        session.scalars(
            select(ScoreRun.id).where(
                ScoreRun.status == ScoreRunStatus.SUCCEEDED,
                ScoreRun.as_of == run.as_of,
                ScoreRun.model_version_id == run.model_version_id,
                ScoreRun.id != run.id,
            )
        ).all()
    )


def fail_score_run(session: Session, score_run_id: int, error: str) -> None:
    """Mark a running run failed and drop its staged scores; a finished run is left as is."""
    # The status first: it waits for partitions staging at this moment (see stage_scores),
    # so the delete after it sees their rows.
    session.execute(
        update(ScoreRun)
        .where(ScoreRun.id == score_run_id, ScoreRun.status == ScoreRunStatus.RUNNING)
        .values(status=ScoreRunStatus.FAILED, finished_at=utc_now(), error=error[:4000])
    )
    clear_staged(session, score_run_id)


def clear_staged(session: Session, score_run_id: int) -> None:
    session.execute(
        delete(PropensityScoreStaging).where(PropensityScoreStaging.score_run_id == score_run_id)
    )


# Everything keyed by a score run, deleted with a run that a rerun replaces.
RUN_TABLES = (PropensityScore, ScoreRunOutcomeDecile, ScoreRunOutcome, ScoreRunDrift)


def delete_runs(session: Session, run_ids: list[int]) -> None:
    """Delete runs whole: a rerun for the same as_of and model replaces them, and is judged
    and monitored itself."""
    if run_ids:
        for table in RUN_TABLES:
            session.execute(delete(table).where(table.score_run_id.in_(run_ids)))
        session.execute(delete(ScoreRun).where(ScoreRun.id.in_(run_ids)))


def prune_runs(session: Session, keep_succeeded: int) -> None:
    """Delete the scores of succeeded runs older than the newest `keep_succeeded` (the visible
    one is always among those), once the run has its outcome: until then its scores are
    what it will be judged by. Run rows, outcomes and drift stay: the history monitoring
    reads."""
    kept = (
        select(ScoreRun.id)
        .where(ScoreRun.status == ScoreRunStatus.SUCCEEDED)
        .order_by(ScoreRun.as_of.desc(), ScoreRun.id.desc())
        .limit(max(keep_succeeded, 1))
    )
    kept_ids = session.scalars(kept).all()
    prunable = session.scalars(
        select(ScoreRun.id).where(
            ScoreRun.status == ScoreRunStatus.SUCCEEDED,
            ScoreRun.id.not_in(kept_ids),
            exists().where(ScoreRunOutcome.score_run_id == ScoreRun.id),
            # Runs pruned before have nothing left: the list stays short however long the
            # history grows.
            exists().where(PropensityScore.score_run_id == ScoreRun.id),
        )
    ).all()
    if prunable:
        session.execute(delete(PropensityScore).where(PropensityScore.score_run_id.in_(prunable)))


def clear_partition(
    connection: Connection, score_run_id: int, customer_range: CustomerRange
) -> None:
    key = PropensityScoreStaging.customer_id
    connection.execute(
        delete(PropensityScoreStaging).where(
            PropensityScoreStaging.score_run_id == score_run_id,
            *in_range(key, customer_range),
        )
    )


@dataclass(frozen=True)
class DecileRow:
    """A published run's customers in one decile and the range of their propensities."""

    decile: int
    customers: int
    mean: float
    min: float
    max: float


def decile_distribution(connection: Connection, score_run_id: int) -> list[DecileRow]:
    score = PropensityScore
    rows = connection.execute(
        select(
            score.decile,
            func.count(),
            func.avg(score.propensity),
            func.min(score.propensity),
            func.max(score.propensity),
        )
        .where(score.score_run_id == score_run_id)
        .group_by(score.decile)
        .order_by(score.decile)
    ).all()
    return [
        DecileRow(int(d), int(n), float(mean), float(lo), float(hi)) for d, n, mean, lo, hi in rows
    ]


@dataclass(frozen=True)
class TopScore:
    """One of a published run's best-ranked customers, with its reasons (best first)."""

    rank: int
    customer_id: str
    propensity: float
    reasons: tuple[str, ...]
    # None in a run published without values.
    expected_value: float | None = None


def top_scores(connection: Connection, score_run_id: int, n: int = 10) -> list[TopScore]:
    score = PropensityScore
    rows = connection.execute(
        select(
            score.rank,
            score.customer_id,
            score.propensity,
            score.expected_value,
            score.reason_1,
            score.reason_2,
            score.reason_3,
        )
        .where(score.score_run_id == score_run_id)
        .order_by(score.rank)
        .limit(n)
    ).all()
    return [
        TopScore(rank, customer_id, propensity, tuple(r for r in reasons if r), value)
        for rank, customer_id, propensity, value, *reasons in rows
    ]


@dataclass(frozen=True)
class ScoreRunRow:
    """A score run as score_runs holds it."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    n_scored: int | None
    flow_run_id: str | None
    error: str | None


def score_run_row(connection: Connection, score_run_id: int) -> ScoreRunRow:
    run = ScoreRun
    row = connection.execute(
        select(
            run.id,
            run.as_of,
            run.model_version_id,
            run.started_at,
            run.finished_at,
            run.status,
            run.n_scored,
            run.flow_run_id,
            run.error,
        ).where(run.id == score_run_id)
    ).one()
    return ScoreRunRow(*row)

"""Drift of score runs as the database holds it: one population stability index per run and
feature (the score included), written in the caller's transaction, and the latest run's."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, exists, insert, select
from sqlalchemy.orm import Session

from db.models import ScoreRun, ScoreRunDrift, ScoreRunStatus


def store_drift(session: Session, score_run_id: int, psi: dict[str, float]) -> None:
    """Replace the run's drift rows with `psi` (feature -> PSI)."""
    session.execute(delete(ScoreRunDrift).where(ScoreRunDrift.score_run_id == score_run_id))
    if psi:
        session.execute(
            insert(ScoreRunDrift),
            [
                {"score_run_id": score_run_id, "feature": feature, "psi": value}
                for feature, value in psi.items()
            ],
        )


@dataclass(frozen=True)
class RunDrift:
    score_run_id: int
    as_of: datetime
    model_version_id: int
    psi: dict[str, float]


def latest_drift(connection: Connection) -> RunDrift | None:
    """The drift of the latest succeeded run that has any (by as_of, then id); None before
    any run measured it."""
    run = connection.execute(
        select(ScoreRun.id, ScoreRun.as_of, ScoreRun.model_version_id)
        .where(
            ScoreRun.status == ScoreRunStatus.SUCCEEDED,
            exists().where(ScoreRunDrift.score_run_id == ScoreRun.id),
        )
        .order_by(ScoreRun.as_of.desc(), ScoreRun.id.desc())
        .limit(1)
    ).one_or_none()
    if run is None:
        return None
    rows = connection.execute(
        select(ScoreRunDrift.feature, ScoreRunDrift.psi).where(ScoreRunDrift.score_run_id == run.id)
    ).all()
    return RunDrift(run.id, run.as_of, run.model_version_id, dict(rows))

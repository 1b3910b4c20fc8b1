"""The parent flow: retrain, then score with whatever model is champion afterwards."""

from dataclasses import dataclass
from datetime import datetime

from prefect import flow

from flows.report import RetrainOutcome, ScoreSummary
from flows.retrain import retrain
from flows.score import score


@dataclass(frozen=True)
class RetrainAndScoreOutcome:
    retrain: RetrainOutcome
    score: ScoreSummary


@flow(name="retrain-and-score", log_prints=True)
def retrain_and_score(
    as_of: datetime | None = None, force_promote: bool = False
) -> RetrainAndScoreOutcome:
    """A rejected challenger leaves the old champion scoring; a failed retrain still scores
    with the existing champion, then fails this run so the failure is seen."""
    retrained = retrain(as_of=as_of, force_promote=force_promote, return_state=True)
    scored = score(as_of=as_of)
    if retrained.is_failed():
        raise RuntimeError(
            f"retrain failed ({retrained.message}); scores were published with the existing "
            f"champion in score run {scored.score_run_id}"
        )
    return RetrainAndScoreOutcome(retrained.result(), scored)

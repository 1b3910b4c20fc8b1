"""The parent flow: retrain, then score with whatever model is champion afterwards."""

from dataclasses import dataclass

from prefect import flow

from flows.retrain import retrain
from flows.score import score
from service.results import RetrainOutcome, ScoreSummary
from service.settings import RetrainRequest, ScoreRequest


@dataclass(frozen=True)
class RetrainAndScoreOutcome:
    retrain: RetrainOutcome
    score: ScoreSummary


@flow(name="retrain-and-score", log_prints=True)
def retrain_and_score(
    request: RetrainRequest = RetrainRequest(),  # noqa: B008
) -> RetrainAndScoreOutcome:
    """A rejected challenger leaves the old champion scoring; a failed retrain still scores
    with the existing champion, then fails this run so the failure is seen."""
    retrained = retrain(request=request, return_state=True)
    scored = score(request=ScoreRequest(as_of=request.as_of))
    if retrained.is_failed():
        raise RuntimeError(
            f"retrain failed ({retrained.message}); scores were published with the existing "
            f"champion in score run {scored.score_run_id}"
        )
    return RetrainAndScoreOutcome(retrained.result(), scored)

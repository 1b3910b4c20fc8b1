"""What the runs return: a retrain's decision, a published score run, its drift, a
backtest's judged runs. Plain records; service/rendering.py turns them into text."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from db.outcomes import EvaluatedRun, RunToEvaluate
from db.scores import DecileRow, TopScore
from llm_model.drift import GROWS_WITH_TIME
from llm_model.monitoring import RealizedOutcome


@dataclass(frozen=True)
class RetrainOutcome:
    """A registered challenger and the champion/challenger decision on it."""

    version_id: int
    kind: str
    status: str
    reason: str
    table: dict[str, dict[str, float]]
    card: str = ""


@dataclass(frozen=True)
class DriftCheck:
    """A score run's population stability index per static feature and for the score against
    its model's training reference; above `threshold` one counts as drifted."""

    psi: dict[str, float]
    threshold: float

    @property
    def drifted(self) -> dict[str, float]:
        """The drifted ones, largest PSI first; a feature that grows with time never is."""
        return {
            name: value
            for name, value in self.largest_first()
            if value > self.threshold and name not in GROWS_WITH_TIME
        }

    def largest_first(self) -> list[tuple[str, float]]:
        return sorted(self.psi.items(), key=lambda item: -item[1])


@dataclass(frozen=True)
class RunDriftCheck:
    """The drift of one stored score run, as the report shows the latest one."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    drift: DriftCheck


@dataclass(frozen=True)
class ScoreSummary:
    """A published score run as its summary shows it; `drift` is None for a model trained
    without a drift reference."""

    score_run_id: int
    as_of: datetime
    model_version_id: int
    n_scored: int
    seconds: float
    deciles: list[DecileRow]
    top: list[TopScore]
    drift: DriftCheck | None = None
    # Earlier runs of the same as_of and model this one replaced.
    replaced: tuple[int, ...] = ()

    @property
    def customers_per_second(self) -> float:
        return self.n_scored / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RunEvaluation:
    """What became of one run: its stored outcome, or when it matures, or why it was
    skipped."""

    run: RunToEvaluate
    outcome: RealizedOutcome | None = None
    skipped: str | None = None

    @property
    def matured(self) -> bool:
        return self.outcome is not None or self.skipped is not None


@dataclass(frozen=True)
class MonitoringReport:
    """The latest judged runs, and the chart of them written for the report."""

    runs: list[EvaluatedRun]
    chart: Path


@dataclass(frozen=True)
class BacktestRow:
    """One model's score run at one cutoff, judged: `model` is the champion or a baseline's
    kind, `kind` the kind of the model that scored."""

    cutoff: datetime
    model: str
    kind: str
    model_version_id: int
    score_run_id: int
    outcome: RealizedOutcome
    # The kind of the value model that rode with it; None without one.
    value_kind: str | None = None


@dataclass(frozen=True)
class Backtest:
    """The judged runs by cutoff, the notes of the cutoffs left out, the CSV file."""

    rows: list[BacktestRow]
    skipped: list[str]
    csv_path: Path

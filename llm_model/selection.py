"""The selection rule: contenders ranked on the temporal holdout by the selection metric;
those within SELECTION_TIE of the best tie, and of them the lowest log loss wins (for value
models, the lowest mean absolute error)."""

from dataclasses import dataclass, field

import numpy as np

from llm_model.metrics import LOWER_IS_BETTER

# The name the model in production before a retrain has in that retrain's holdout table.
CHAMPION = "champion"
# Contenders this close to the best on the selection metric tie with it: on holdouts of a
# few thousand customers such differences are noise (an AUC's standard error is ~0.005),
# and of near-equal rankers the better calibrated serves better (docs/benchmarks.md).
SELECTION_TIE = 0.001


@dataclass(frozen=True)
class Evaluation:
    """Holdout metrics keyed by name: every servable contender (by kind), references that
    are not served (the recency heuristic, the recurrent model before calibration) and
    the champion in production; `scores` keeps the holdout predictions for charts (not
    stored); `tie_breaker` decides between contenders tied on the selection metric (lower
    is better)."""

    table: dict[str, dict[str, float]]
    contenders: tuple[str, ...]
    labels: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    tie_breaker: str = "log_loss"

    def ranked(self, metric: str) -> list[str]:
        """Contenders best first by `metric`; those tied with the best go first, by the
        tie breaker."""
        tied = self.tied_with_best(metric)

        def key(name: str) -> tuple[bool, float, float]:
            breaker = self.table[name][self.tie_breaker]
            value = self._value(name, metric)
            return (False, breaker, value) if name in tied else (True, value, breaker)

        return sorted(self.contenders, key=key)

    def tied_with_best(self, metric: str) -> set[str]:
        """The contenders within SELECTION_TIE of the best by `metric`, the best included."""
        best = min(self._value(name, metric) for name in self.contenders)
        return {
            name for name in self.contenders if self._value(name, metric) - best <= SELECTION_TIE
        }

    def _value(self, name: str, metric: str) -> float:
        """`metric` of `name`, lower is better."""
        row = self.table[name]
        return row[metric] if metric in LOWER_IS_BETTER else -row[metric]

    def winner(self, metric: str) -> str:
        return self.ranked(metric)[0]

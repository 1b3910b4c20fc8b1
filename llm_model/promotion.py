"""Champion/challenger rule: the best contender on the holdout (by the selection metric;
of those within SELECTION_TIE of the best, the lowest log loss) replaces the champion
unless it is worse than the champion, on the same holdout, by more than the tolerance.
The first retrain always leaves a champion. A model version carries its value model: it is
promoted only when its value model passes the same rule, by normalised Gini on realized
spend, against the champion's value model."""

from dataclasses import dataclass

from llm_model.metrics import LOWER_IS_BETTER, VALUE_METRIC
from llm_model.selection import CHAMPION, SELECTION_TIE, Evaluation


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def contenders_line(evaluation: Evaluation, metric: str) -> str:
    ranked = evaluation.ranked(metric)
    return ", ".join(f"{name} {evaluation.table[name][metric]:.4f}" for name in ranked)


def decide_promotion(
    evaluation: Evaluation, metric: str, tolerance: float, force: bool = False
) -> Decision:
    winner = evaluation.winner(metric)
    score = evaluation.table[winner][metric]
    best_of = f"{winner} has the best holdout {metric} of {contenders_line(evaluation, metric)}"
    if len(evaluation.tied_with_best(metric)) > 1:
        best_of = (
            f"{winner} has the lowest {evaluation.tie_breaker.replace('_', ' ')} of the "
            f"contenders within {SELECTION_TIE} of "
            f"the best holdout {metric} ({contenders_line(evaluation, metric)})"
        )
    if force:
        return Decision(True, f"forced by operator; {best_of}")
    if CHAMPION not in evaluation.table:
        return Decision(True, f"first champion: {best_of}")
    champion = evaluation.table[CHAMPION][metric]
    shortfall = score - champion if metric in LOWER_IS_BETTER else champion - score
    versus = f"the champion's {champion:.4f} (tolerance {tolerance})"
    if shortfall > tolerance:
        return Decision(False, f"{best_of}, worse than {versus}")
    return Decision(True, f"{best_of}, against {versus}")


def decide_version_promotion(
    propensity: Evaluation,
    value: Evaluation | None,
    metric: str,
    tolerance: float,
    force: bool = False,
) -> Decision:
    """The rule for the propensity model, then for its value model (`value`: the value
    contenders' holdout table; None where value was off). A champion without a value model
    is no bar to one with."""
    decision = decide_promotion(propensity, metric, tolerance, force)
    if value is None or force or not decision.promote:
        return decision
    of_value = decide_promotion(value, VALUE_METRIC, tolerance)
    if CHAMPION not in value.table:
        best_of = of_value.reason.removeprefix("first champion: ")
        return Decision(True, f"{decision.reason}; value model: {best_of}")
    if not of_value.promote:
        return Decision(False, f"{decision.reason}; but its value model: {of_value.reason}")
    return Decision(True, f"{decision.reason}; value model: {of_value.reason}")

"""The champion/challenger rule: the best contender by the selection metric is promoted on a
first retrain, or when it is not worse than the champion by more than the tolerance (in
that metric's direction); an operator can force it."""

import pytest

from llm_model.promotion import decide_promotion
from llm_model.selection import Evaluation

CONTENDERS = ("gru", "logistic", "gbm")


def evaluation(metric: str, best: float, champion: float | None = None) -> Evaluation:
    """`best` is the winner's (gbm's) figure; the others trail it by 0.05 in `metric`'s
    direction. References not served (recency, gru_raw) beat everyone and must not count."""
    worse = 0.05 if metric == "log_loss" else -0.05
    table = {
        "gbm": {metric: best},
        "gru": {metric: best + worse},
        "logistic": {metric: best + 2 * worse},
        "recency": {metric: best - 3 * worse},
        "gru_raw": {metric: best - 3 * worse},
    }
    if metric != "log_loss":
        for name, log_loss in zip(table, (0.3, 0.31, 0.32, 0.2, 0.2), strict=True):
            table[name]["log_loss"] = log_loss
    if champion is not None:
        table["champion"] = {"log_loss": 0.1, metric: champion}
    return Evaluation(table=table, contenders=CONTENDERS)


def test_the_first_retrain_promotes_the_best_contender():
    decision = decide_promotion(evaluation("roc_auc", 0.70), "roc_auc", tolerance=0.005)
    assert decision.promote
    assert decision.reason.startswith(
        "first champion: gbm has the best holdout roc_auc of gbm 0.7000, gru 0.6500, "
        "logistic 0.6000"
    )


# (metric, the winner's figure, the champion's, tolerance, promoted, what the reason says)
CASES = [
    ("roc_auc", 0.85, 0.80, 0.005, True, "against the champion's 0.8000"),  # better
    ("roc_auc", 0.78, 0.782, 0.005, True, "against the champion's 0.7820"),  # within
    ("roc_auc", 0.78, 0.79, 0.005, False, "worse than the champion's 0.7900"),  # beyond
    ("log_loss", 0.25, 0.30, 0.005, True, "against the champion's 0.3000"),  # better
    ("log_loss", 0.30, 0.297, 0.005, True, "against the champion's 0.2970"),  # within
    ("log_loss", 0.30, 0.29, 0.005, False, "worse than the champion's 0.2900"),  # beyond
    # Exactly at the tolerance (binary fractions, no rounding): not worse by MORE than it.
    ("roc_auc", 0.75, 0.7578125, 0.0078125, True, "against the champion's 0.7578"),
    ("log_loss", 0.2578125, 0.25, 0.0078125, True, "against the champion's 0.2500"),
]


@pytest.mark.parametrize(("metric", "best", "champion", "tolerance", "promote", "says"), CASES)
def test_against_a_champion_the_tolerance_applies_in_the_metric_direction(
    metric, best, champion, tolerance, promote, says
):
    decision = decide_promotion(evaluation(metric, best, champion), metric, tolerance)
    assert decision.promote is promote
    assert decision.reason.startswith(f"gbm has the best holdout {metric}")
    assert f"{says} (tolerance {tolerance})" in decision.reason


@pytest.mark.parametrize(
    ("metric", "best", "champion"), [("roc_auc", 0.6, 0.9), ("log_loss", 0.4, 0.1)]
)
def test_force_promote_overrides_the_rule(metric, best, champion):
    far_worse = evaluation(metric, best, champion)
    assert not decide_promotion(far_worse, metric, tolerance=0.005).promote

    decision = decide_promotion(far_worse, metric, tolerance=0.005, force=True)

    assert decision.promote
    assert decision.reason.startswith(f"forced by operator; gbm has the best holdout {metric}")


def test_a_tie_on_the_metric_is_named_in_the_reason():
    table = {
        "gru_hybrid": {"roc_auc": 0.7801, "log_loss": 0.3787},
        "gru": {"roc_auc": 0.7799, "log_loss": 0.3785},
        "logistic": {"roc_auc": 0.7774, "log_loss": 0.3814},
    }
    decision = decide_promotion(Evaluation(table=table, contenders=tuple(table)), "roc_auc", 0.005)
    assert decision.reason == (
        "first champion: gru has the lowest log loss of the contenders within 0.001 of the "
        "best holdout roc_auc (gru 0.7799, gru_hybrid 0.7801, logistic 0.7774)"
    )

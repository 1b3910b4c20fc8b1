"""The champion/challenger rule."""

import pytest

from llm_model.promotion import decide_promotion
from llm_model.training import Evaluation


def evaluation(model: float, champion: float | None, baselines: dict[str, float]) -> Evaluation:
    table = {"model": {"roc_auc": model}, **{k: {"roc_auc": v} for k, v in baselines.items()}}
    if champion is not None:
        table["champion"] = {"roc_auc": champion}
    return Evaluation(table=table, baselines=tuple(baselines))


@pytest.mark.parametrize(
    ("model", "champion", "promote", "reason"),
    [
        (0.80, None, True, "first champion"),
        (0.74, None, False, "does not beat the best baseline rfm_gbm"),
        (0.78, 0.782, True, "vs champion"),
        (0.78, 0.79, False, "below the champion's 0.7900"),
    ],
)
def test_promotion_rule(model, champion, promote, reason):
    decision = decide_promotion(
        evaluation(model, champion, {"recency": 0.70, "rfm_gbm": 0.75}), tolerance=0.005
    )
    assert decision.promote is promote
    assert reason in decision.reason


def test_force_promote_overrides_the_rule():
    decision = decide_promotion(evaluation(0.6, 0.9, {"rfm_gbm": 0.75}), 0.005, force=True)
    assert decision.promote
    assert "forced" in decision.reason

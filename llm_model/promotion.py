"""Champion/challenger rule: a new model replaces the champion only when it is not worse
than the champion beyond a tolerance AND beats the best baseline on the same holdout."""

from dataclasses import dataclass

from llm_model.manifest import Evaluation


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide_promotion(evaluation: Evaluation, tolerance: float, force: bool = False) -> Decision:
    table = evaluation.table
    model_auc = table["model"]["roc_auc"]
    best = evaluation.best_baseline()
    best_auc = table[best]["roc_auc"]
    if force:
        return Decision(True, f"forced by operator (holdout AUC {model_auc:.4f})")
    if model_auc <= best_auc:
        return Decision(
            False,
            f"holdout AUC {model_auc:.4f} does not beat the best baseline {best} ({best_auc:.4f})",
        )
    if "champion" in table:
        champion_auc = table["champion"]["roc_auc"]
        if model_auc < champion_auc - tolerance:
            return Decision(
                False,
                f"holdout AUC {model_auc:.4f} is below the champion's {champion_auc:.4f} "
                f"by more than the tolerance {tolerance}",
            )
        return Decision(
            True,
            f"holdout AUC {model_auc:.4f} vs champion {champion_auc:.4f} "
            f"(tolerance {tolerance}) and best baseline {best} {best_auc:.4f}",
        )
    return Decision(
        True, f"first champion: holdout AUC {model_auc:.4f} beats {best} ({best_auc:.4f})"
    )

"""How published scores did once their horizon had passed: a score run's realized metrics
against the conversions that really happened, per customer and per decile of the run."""

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from llm_model import metrics

DECILE_COLUMNS = ["decile", "customers", "expected", "actual"]


@dataclass(frozen=True)
class RealizedOutcome:
    """A run's scores judged against what happened: ranking metrics are None where they are
    undefined (one class only), and `note` says why. `deciles` holds, per decile of the run
    (1 = best), its customers, expected conversions (the sum of their propensities) and
    actual conversions."""

    n_customers: int
    n_converted: int
    base_rate: float
    roc_auc: float | None
    pr_auc: float | None
    log_loss: float
    brier: float
    ece: float
    top_decile_lift: float | None
    note: str | None
    deciles: pd.DataFrame = field(repr=False)

    def columns(self) -> dict[str, float | int | str | None]:
        """The figures without the deciles, one value per column."""
        return {name: value for name, value in asdict(self).items() if name != "deciles"}


def realized_outcome(
    converted: np.ndarray, propensity: np.ndarray, decile: np.ndarray
) -> RealizedOutcome:
    """Judge one run: for each customer it scored, whether they converted in its horizon,
    the propensity it published and the decile it published."""
    y = np.asarray(converted, dtype=np.int64)
    p = np.asarray(propensity, dtype=float)
    n, positives = y.size, int(y.sum())
    deciles = (
        pd.DataFrame({"decile": decile, "propensity": p, "actual": y})
        .groupby("decile", as_index=False)
        .agg(
            customers=("actual", "size"), expected=("propensity", "sum"), actual=("actual", "sum")
        )[DECILE_COLUMNS]
    )
    ranking = 0 < positives < n
    return RealizedOutcome(
        n_customers=n,
        n_converted=positives,
        base_rate=positives / n,
        roc_auc=metrics.roc_auc(y, p) if ranking else None,
        pr_auc=metrics.pr_auc(y, p) if ranking else None,
        log_loss=metrics.log_loss(y, p),
        brier=metrics.brier(y, p),
        ece=metrics.expected_calibration_error(y, p),
        top_decile_lift=top_decile_lift(deciles, positives / n) if positives else None,
        note=undefined_metrics_note(positives, n),
        deciles=deciles,
    )


def top_decile_lift(deciles: pd.DataFrame, base_rate: float) -> float:
    """The conversion rate of the run's own decile 1, the customers a campaign got, over the
    base rate (metrics.top_decile_lift cuts its own deciles, which may differ by a customer)."""
    best = deciles.loc[deciles["decile"] == deciles["decile"].min()].iloc[0]
    return float(best["actual"] / best["customers"] / base_rate)


def undefined_metrics_note(positives: int, n: int) -> str | None:
    if positives == 0:
        return "no customer converted in the horizon: ROC AUC, PR AUC and lift are undefined"
    if positives == n:
        return "every customer converted in the horizon: ROC AUC and PR AUC are undefined"
    return None

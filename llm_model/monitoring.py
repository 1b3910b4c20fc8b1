"""How published scores did once their horizon had passed: a score run's realized metrics
against the conversions that really happened, per customer and per decile of the run, and
its expected values against the revenue that came in, per value decile."""

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from llm_model import metrics

DECILE_COLUMNS = ["decile", "customers", "expected", "actual"]


@dataclass(frozen=True)
class PublishedValues:
    """What a run published of value and what came in: per customer its expected value and
    value decile, the revenue it brought in the horizon, and the target events whose amount
    was missing (counted as 0)."""

    expected_value: np.ndarray
    value_decile: np.ndarray
    spend: np.ndarray
    missing_amounts: int = 0


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
    # Value figures; None for a run published without expected values.
    realized_revenue: float | None = None
    predicted_revenue: float | None = None
    value_gini: float | None = None
    value_mae: float | None = None
    top_decile_revenue_share: float | None = None

    def columns(self) -> dict[str, float | int | str | None]:
        """The figures without the deciles, one value per column."""
        return {name: value for name, value in asdict(self).items() if name != "deciles"}


def realized_outcome(
    converted: np.ndarray,
    propensity: np.ndarray,
    decile: np.ndarray,
    values: PublishedValues | None = None,
) -> RealizedOutcome:
    """Judge one run: for each customer it scored, whether they converted in its horizon,
    the propensity it published and the decile it published; and its values, where it
    published them."""
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
    outcome = RealizedOutcome(
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
    return outcome if values is None else with_values(outcome, values)


def with_values(outcome: RealizedOutcome, values: PublishedValues) -> RealizedOutcome:
    """The outcome with the run's value figures and value deciles. The top decile's share is
    that of the run's own value decile 1, the customers a campaign by value got."""
    spend = np.asarray(values.spend, dtype=float)
    expected = np.asarray(values.expected_value, dtype=float)
    by_decile = (
        pd.DataFrame({"decile": values.value_decile, "expected": expected, "spend": spend})
        .groupby("decile", as_index=False)
        .agg(
            value_customers=("spend", "size"),
            expected_revenue=("expected", "sum"),
            actual_revenue=("spend", "sum"),
        )
    )
    deciles = outcome.deciles.merge(by_decile, on="decile", how="outer")
    revenue = float(spend.sum())
    best = by_decile.loc[by_decile["decile"] == by_decile["decile"].min(), "actual_revenue"]
    missing = (
        f"{values.missing_amounts:,} target event(s) in the horizon had no amount: counted as 0 "
        "spend"
        if values.missing_amounts
        else None
    )
    no_revenue = "no revenue in the horizon: value Gini and the top decile's share are undefined"
    return replace(
        outcome,
        deciles=deciles,
        realized_revenue=revenue,
        predicted_revenue=float(expected.sum()),
        value_gini=metrics.value_gini(spend, expected) if revenue > 0 else None,
        value_mae=float(np.mean(np.abs(expected - spend))),
        top_decile_revenue_share=float(best.iloc[0] / revenue) if revenue > 0 else None,
        note="; ".join(filter(None, [outcome.note, missing, None if revenue > 0 else no_revenue]))
        or None,
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

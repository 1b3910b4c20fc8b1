"""The level of the published expected values: a forecast of what the customers will spend
in the horizon after the data cutoff, in total.

The value models rank customers well, but learn the level of the labelled periods, which lie
a horizon and more before the window they forecast; where spend falls or rises from period
to period (a cohort dying out, a season), their total drifts with it. So the total is
forecast apart, by two forecasters that need no model:
- carried_forward: the horizon just before the cutoff repeats (what the same customers spent
  there);
- dropout: BG/NBD x Gamma-Gamma fitted on the customers' purchase days (llm_model.dropout),
  which forecasts a cohort's decay.
Each is judged on the newest labelled window: made at its start (the holdout's cutoff) from
the data up to there, against the spend realized in it. The one closer to what came in
(forecast / realized nearer 1, on a log scale) forecasts the window after the data cutoff,
and the served value model is scaled so that its total over the same customers equals that
forecast: the ranking, and with it every Gini, stays the value model's."""

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from llm_model.dropout import RepeatHistory, expected_spend
from llm_model.sequences import naive_utc, naive_utc_times

CARRIED_FORWARD, DROPOUT = "carried_forward", "dropout"


@dataclass(frozen=True, eq=False)
class PurchaseSummary:
    """Per customer with an event (of any type) by a cutoff: their purchase days as
    BG/NBD reads them (customers without a purchase: 0 repeats and NaN ages) and what they
    spent in the horizon before the cutoff (net, never below 0)."""

    repeats: np.ndarray
    last_repeat: np.ndarray
    age: np.ndarray
    repeat_spend: np.ndarray
    recent_spend: np.ndarray

    @staticmethod
    def concat(parts: list["PurchaseSummary"]) -> "PurchaseSummary":
        return PurchaseSummary(
            **{
                name: np.concatenate([getattr(part, name) for part in parts])
                for name in PurchaseSummary.field_names()
            }
        )

    @staticmethod
    def field_names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(PurchaseSummary))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.field_names()}

    def repeat_history(self) -> RepeatHistory:
        """The customers with a purchase, as BG/NBD x Gamma-Gamma reads them."""
        bought = ~np.isnan(self.age)
        return RepeatHistory(
            self.repeats[bought],
            self.last_repeat[bought],
            self.age[bought],
            self.repeat_spend[bought],
        )


def purchase_summary(
    events: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int, target_event: str
) -> PurchaseSummary:
    """The summary at `cutoff` of the customers whose events these are (ids sorted)."""
    cutoff = naive_utc(cutoff)
    occurred = naive_utc_times(events["occurred_at"])
    seen = events[occurred <= cutoff].assign(
        occurred_at=occurred, customer_id=lambda f: f["customer_id"].astype(str)
    )
    customers = pd.Index(np.sort(seen["customer_id"].unique()))
    purchases = seen[seen["event_type"] == target_event].assign(
        amount=lambda f: f["amount"].astype(float).fillna(0.0),
        day=lambda f: f["occurred_at"].dt.floor("D"),
    )
    recent = purchases[purchases["occurred_at"] > cutoff - pd.Timedelta(days=horizon_days)]
    recent_spend = recent.groupby("customer_id")["amount"].sum().clip(lower=0.0)
    days = purchases.groupby(["customer_id", "day"])["amount"].sum().reset_index()
    by_customer = days.groupby("customer_id")["day"]
    first, last = by_customer.min(), by_customer.max()
    repeat = days[days["day"] > by_customer.transform("min")]
    return PurchaseSummary(
        repeats=(by_customer.size() - 1).reindex(customers, fill_value=0).to_numpy(float),
        last_repeat=(last - first).dt.days.reindex(customers, fill_value=0).to_numpy(float),
        age=(cutoff.floor("D") - first).dt.days.reindex(customers).to_numpy(float),
        repeat_spend=repeat.groupby("customer_id")["amount"]
        .mean()
        .reindex(customers)
        .to_numpy(float),
        recent_spend=recent_spend.reindex(customers, fill_value=0.0).to_numpy(float),
    )


@dataclass(frozen=True, eq=False)
class LevelInputs:
    """The purchase summaries the level is forecast from: at the holdout's cutoff (`before`,
    the customers the newest labelled window judges the forecasters on) and at the data
    cutoff (`now`)."""

    before: PurchaseSummary
    now: PurchaseSummary

    @staticmethod
    def concat(parts: list["LevelInputs"]) -> "LevelInputs":
        return LevelInputs(
            PurchaseSummary.concat([p.before for p in parts]),
            PurchaseSummary.concat([p.now for p in parts]),
        )


def forecast_total(kind: str, summary: PurchaseSummary, horizon_days: int) -> float:
    """The spend the summarised customers will realize in the horizon after its cutoff, by
    the forecaster `kind`; a ValueError where it cannot forecast."""
    if kind == CARRIED_FORWARD:
        return float(summary.recent_spend.sum())
    if kind == DROPOUT:
        return float(expected_spend(summary.repeat_history(), horizon_days).sum())
    raise ValueError(f"unknown level forecaster {kind!r}; expected {CARRIED_FORWARD} or {DROPOUT}")


@dataclass(frozen=True)
class Level:
    """The forecaster chosen, its forecast total for the window after the data cutoff, and
    every forecaster's forecast / realized on the newest labelled window (or why it could
    not forecast)."""

    kind: str
    total: float
    checks: dict[str, float]
    failures: dict[str, str]


def forecast_level(inputs: LevelInputs, realized: float, horizon_days: int) -> Level:
    """The level forecast: the forecaster whose forecast / realized on the newest labelled
    window (`realized`: what the `before` customers spent in it) is nearest 1 forecasts from
    `now`. Carried forward where nothing could be judged (no spend in the window)."""
    checks, failures = {}, {}
    for kind in (CARRIED_FORWARD, DROPOUT):
        try:
            forecast = forecast_total(kind, inputs.before, horizon_days)
        except ValueError as error:
            failures[kind] = str(error)
            continue
        if realized > 0:
            checks[kind] = forecast / realized
    chosen = min(
        checks, key=lambda kind: abs(np.log(max(checks[kind], 1e-12))), default=CARRIED_FORWARD
    )
    try:
        total = forecast_total(chosen, inputs.now, horizon_days)
    except ValueError as error:
        failures[chosen] = f"judged, but not at the data cutoff: {error}"
        chosen, total = CARRIED_FORWARD, forecast_total(CARRIED_FORWARD, inputs.now, horizon_days)
    return Level(chosen, total, checks, failures)

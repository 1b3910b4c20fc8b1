"""What the published expected values' total would be if BG/NBD x Gamma-Gamma set its level.

    python benchmarks/dropout_level.py

The service puts every value model on the level of the newest labelled period (its total
on half the holdout equals the spend realized there). A dropout model forecasts a cohort's
decay instead. This script fits BG/NBD (Fader, Hardie and Lee 2005) and Gamma-Gamma (Fader,
Hardie and Lee 2005, "RFM and CLV") by maximum likelihood on the target events up to each
cutoff, days as the unit, and prints their forecast total spend in (cutoff, cutoff +
horizon] against the spend realized there by the same customers: on CDNOW at the forward
cutoffs and on the synthetic population at the last cutoffs of its year. The closed forms
are those of lifetimes' BetaGeoFitter and GammaGammaFitter; its fits at the CDNOW cutoffs
match pymc-marketing's MAP totals in docs/benchmarks.md within 0.3%. Offline.
"""

import numpy as np
import pandas as pd
from cdnow import cdnow_events
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from service.synthetic import generate


def repeat_summary(
    purchases: pd.DataFrame, cutoff: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, pd.Index]:
    """Per customer with a purchase up to `cutoff`: repeat purchase days x, days from the
    first to the last purchase t_x, days from the first purchase to the cutoff T, and the
    mean spend of a repeat day (NaN without one); purchases on one day are one."""
    days = (
        purchases[purchases["occurred_at"] <= cutoff]
        .assign(day=lambda frame: frame["occurred_at"].dt.floor("D"))
        .groupby(["customer_id", "day"])["amount"]
        .sum()
        .reset_index()
    )
    by_customer = days.groupby("customer_id")["day"]
    first, last = by_customer.min(), by_customer.max()
    repeat = days[days["day"] > days["customer_id"].map(first)]
    x = (by_customer.size() - 1).to_numpy(float)
    t_x = (last - first).dt.days.to_numpy(float)
    age = (cutoff.floor("D") - first).dt.days.to_numpy(float)
    spend = repeat.groupby("customer_id")["amount"].mean().reindex(first.index).to_numpy()
    return x, t_x, age, spend, first.index


def bgnbd_negative_log_likelihood(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> float:
    r, alpha, a, b = np.exp(log_params)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    dropped = np.where(
        x > 0,
        betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return -float(np.sum(common + np.logaddexp(alive, dropped)))


def expected_purchase_days(
    params: np.ndarray, horizon: float, x: np.ndarray, t_x: np.ndarray, age: np.ndarray
) -> np.ndarray:
    r, alpha, a, b = params
    ahead = horizon / (alpha + age + horizon)
    survive = ((alpha + age) / (alpha + age + horizon)) ** (r + x)
    numerator = (
        (a + b + x - 1) / (a - 1) * (1 - survive * hyp2f1(r + x, b + x, a + b + x - 1, ahead))
    )
    dropped = np.where(
        x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + age) / (alpha + t_x)) ** (r + x), 0
    )
    return numerator / (1 + dropped)


def gamma_gamma_negative_log_likelihood(
    log_params: np.ndarray, x: np.ndarray, spend: np.ndarray
) -> float:
    p, q, v = np.exp(log_params)
    return -float(
        np.sum(
            gammaln(p * x + q)
            - gammaln(p * x)
            - gammaln(q)
            + q * np.log(v)
            + (p * x - 1) * np.log(spend)
            + p * x * np.log(x)
            - (p * x + q) * np.log(x * spend + v)
        )
    )


def fitted(objective, n_params: int, *data: np.ndarray) -> np.ndarray:
    found = minimize(
        objective, np.zeros(n_params), args=data, method="Nelder-Mead", options={"maxiter": 4000}
    )
    return np.exp(found.x)


def forecast_total(
    purchases: pd.DataFrame, cutoff: pd.Timestamp, horizon: int
) -> tuple[float, float]:
    """BG/NBD x Gamma-Gamma's total spend in (cutoff, cutoff + horizon] and the spend the same
    customers realized there."""
    x, t_x, age, spend, customers = repeat_summary(purchases, cutoff)
    purchase_days = expected_purchase_days(
        fitted(bgnbd_negative_log_likelihood, 4, x, t_x, age), horizon, x, t_x, age
    )
    repeat = (x > 0) & (np.nan_to_num(spend) > 0)
    p, q, v = fitted(gamma_gamma_negative_log_likelihood, 3, x[repeat], spend[repeat])
    day_spend = np.where(
        repeat, (v + np.nan_to_num(spend) * x) * p / (p * x + q - 1), p * v / (q - 1)
    )
    window = purchases["occurred_at"].between(
        cutoff, cutoff + pd.Timedelta(days=horizon), inclusive="right"
    )
    realized = purchases.loc[window & purchases["customer_id"].isin(customers), "amount"].sum()
    return float((purchase_days * day_spend).sum()), float(realized)


def main() -> None:
    # The service imports identical CDNOW rows once (its event key hashes the content).
    cdnow = cdnow_events().drop_duplicates()
    synthetic = generate(50_000, seed=0).events
    synthetic = synthetic[synthetic["event_type"] == "purchase"]
    last = synthetic["occurred_at"].max().floor("D")
    runs = [("CDNOW", cdnow, pd.Timestamp(day), 90) for day in ("1997-12-31", "1998-03-31")]
    runs += [
        ("synthetic 50k", synthetic, last - pd.Timedelta(days=horizon * back), horizon)
        for horizon in (30, 90)
        for back in (1, 2, 3)
    ]
    print(
        "| data | cutoff | horizon (days) | forecast total | realized total | forecast / realized |"
    )
    print("|---|---|---|---|---|---|")
    for name, purchases, cutoff, horizon in runs:
        forecast, realized = forecast_total(purchases, cutoff, horizon)
        print(
            f"| {name} | {cutoff:%Y-%m-%d} | {horizon} | {forecast:,.0f} | {realized:,.0f} "
            f"| {forecast / realized:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

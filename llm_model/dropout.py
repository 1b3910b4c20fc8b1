"""The buy-till-you-die pair as a forecaster of spend: BG/NBD (Fader, Hardie and Lee 2005,
"Counting your customers the easy way") for how many days a customer buys on, Gamma-Gamma
(Fader, Hardie and Lee 2005, "RFM and CLV") for what a day's purchases are worth, both by
maximum likelihood on the customers' purchase days, days as the unit. The closed forms are
those of lifetimes' BetaGeoFitter and GammaGammaFitter.

They model a customer's purchase rate as fixed until an unobserved dropout: a closed cohort
dying out, which a model of the labelled past cannot see coming. The service uses their
total only as one forecast of the horizon's spend (llm_model.level), never as a contender
for who buys."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

# Fewer customers with a repeat purchase than this fit parameters nobody should trust.
MIN_REPEAT_BUYERS = 20


@dataclass(frozen=True, eq=False)
class RepeatHistory:
    """Per customer with a purchase by the cutoff: repeat purchase days (x), days from the
    first purchase to the last (t_x) and to the cutoff (T), and the mean spend of a repeat
    day (NaN without one). Purchases on one day are one."""

    repeats: np.ndarray
    last_repeat: np.ndarray
    age: np.ndarray
    repeat_spend: np.ndarray


def bgnbd_negative_log_likelihood(log_params: np.ndarray, history: RepeatHistory) -> float:
    r, alpha, a, b = np.exp(log_params)
    x, t_x, age = history.repeats, history.last_repeat, history.age
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    dropped = np.where(
        x > 0,
        betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return -float(np.sum(common + np.logaddexp(alive, dropped)))


def expected_purchase_days(
    params: np.ndarray, history: RepeatHistory, horizon_days: float
) -> np.ndarray:
    """BG/NBD's expected purchase days in the next `horizon_days`, per customer."""
    r, alpha, a, b = params
    x, t_x, age = history.repeats, history.last_repeat, history.age
    ahead = horizon_days / (alpha + age + horizon_days)
    survive = ((alpha + age) / (alpha + age + horizon_days)) ** (r + x)
    buying = (a + b + x - 1) / (a - 1) * (1 - survive * hyp2f1(r + x, b + x, a + b + x - 1, ahead))
    dropped = np.where(
        x > 0, a / np.maximum(b + x - 1, 1e-12) * ((alpha + age) / (alpha + t_x)) ** (r + x), 0
    )
    return buying / (1 + dropped)


def gamma_gamma_negative_log_likelihood(
    log_params: np.ndarray, repeats: np.ndarray, spend: np.ndarray
) -> float:
    p, q, v = np.exp(log_params)
    x = repeats
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


def fitted(objective: Callable[..., float], n_params: int, *data: object) -> np.ndarray:
    """Positive parameters minimising `objective` (which takes their logs)."""
    found = minimize(
        objective, np.zeros(n_params), args=data, method="Nelder-Mead", options={"maxiter": 4000}
    )
    return np.exp(found.x)


def expected_spend(history: RepeatHistory, horizon_days: float) -> np.ndarray:
    """Per customer, BG/NBD's expected purchase days in the next `horizon_days` times
    Gamma-Gamma's expected spend of one; a ValueError where the pair cannot be fitted (too
    few repeat buyers) or its fit has no finite mean spend (q <= 1)."""
    spend = np.nan_to_num(history.repeat_spend)
    repeat = (history.repeats > 0) & (spend > 0)
    if repeat.sum() < MIN_REPEAT_BUYERS:
        raise ValueError(
            f"{int(repeat.sum())} customers with a repeat purchase (at least "
            f"{MIN_REPEAT_BUYERS} needed to fit BG/NBD x Gamma-Gamma)"
        )
    bgnbd = fitted(bgnbd_negative_log_likelihood, 4, history)
    p, q, v = fitted(gamma_gamma_negative_log_likelihood, 3, history.repeats[repeat], spend[repeat])
    if q <= 1:
        raise ValueError(f"Gamma-Gamma fit without a finite mean spend (q={q:.3g} <= 1)")
    day_spend = np.where(
        repeat, (v + spend * history.repeats) * p / (p * history.repeats + q - 1), p * v / (q - 1)
    )
    expected = expected_purchase_days(bgnbd, history, horizon_days) * day_spend
    if not np.isfinite(expected).all():
        raise ValueError("BG/NBD x Gamma-Gamma gave non-finite expected spend")
    return expected

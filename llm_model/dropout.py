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
    """Gamma-Gamma's likelihood in (log p, log (q - 1), log m), m = p v / (q - 1) being the
    population's mean spend: where p runs off to infinity (spend that barely varies within
    a customer), v with it, m stays put, and q > 1 keeps it finite."""
    p, q_less_1, mean = np.exp(log_params)
    q, v = q_less_1 + 1, mean * q_less_1 / p
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


# Bounds on the logs of the parameters: beyond them a fit runs off along a direction the
# likelihood barely tells apart (a Gamma-Gamma p of 1e8, a BG/NBD a and b of 1e6), where
# the search can stall far from the optimum.
LOG_BOUND = 12.0


def fitted(objective: Callable[..., float], start: np.ndarray, *data: object) -> np.ndarray:
    """Positive parameters minimising `objective` (which takes their logs), searched from
    the logs `start` within +-LOG_BOUND."""
    found = minimize(
        objective,
        start,
        args=data,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * len(start),
    )
    return np.exp(found.x)


def expected_day_spend(history: RepeatHistory) -> np.ndarray:
    """Per customer, Gamma-Gamma's expected spend of a purchase day: their own mean spend
    shrunk towards the population's, the more the fewer days it rests on; the population's
    for customers without a repeat purchase. A ValueError with too few repeat buyers."""
    spend = np.nan_to_num(history.repeat_spend)
    repeat = (history.repeats > 0) & (spend > 0)
    if repeat.sum() < MIN_REPEAT_BUYERS:
        raise ValueError(
            f"{int(repeat.sum())} customers with a repeat purchase (at least "
            f"{MIN_REPEAT_BUYERS} needed to fit BG/NBD x Gamma-Gamma)"
        )
    repeats, repeat_spend = history.repeats[repeat], spend[repeat]
    p, q_less_1, mean = fitted(
        gamma_gamma_negative_log_likelihood,
        np.array([0.0, 0.0, np.log(repeat_spend.mean())]),
        repeats,
        repeat_spend,
    )
    # The conditional mean, (v + x spend) p / (p x + q - 1), in these parameters.
    repeat_weight = p * history.repeats
    return np.where(
        repeat, (mean * q_less_1 + spend * repeat_weight) / (repeat_weight + q_less_1), mean
    )


def expected_spend(history: RepeatHistory, horizon_days: float) -> np.ndarray:
    """Per customer, BG/NBD's expected purchase days in the next `horizon_days` times
    Gamma-Gamma's expected spend of one; a ValueError where the pair cannot be fitted (too
    few repeat buyers) or gives a spend that is not finite."""
    day_spend = expected_day_spend(history)
    bgnbd = fitted(bgnbd_negative_log_likelihood, np.zeros(4), history)
    expected = expected_purchase_days(bgnbd, history, horizon_days) * day_spend
    if not np.isfinite(expected).all():
        raise ValueError("BG/NBD x Gamma-Gamma gave non-finite expected spend")
    return expected

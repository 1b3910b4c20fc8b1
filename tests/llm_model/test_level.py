"""The level forecast: purchase summaries against a hand-computed case, BG/NBD x
Gamma-Gamma against customers simulated from its own story, and the rule that chooses the
forecaster."""

import numpy as np
import pandas as pd
import pytest

from llm_model.dropout import RepeatHistory, expected_day_spend, expected_spend
from llm_model.level import (
    CARRIED_FORWARD,
    DROPOUT,
    LevelInputs,
    PurchaseSummary,
    forecast_level,
    forecast_total,
    purchase_summary,
)

CUTOFF = pd.Timestamp("2026-03-31")


@pytest.mark.parametrize("timezone", [None, "UTC"])
def test_a_purchase_summary_by_hand(timezone):
    rows = [
        # a: purchase days 01-10 (two purchases, one day), 02-20, 03-25 (a 5 refund), 04-02
        # after the cutoff.
        ("a", "purchase", "2026-01-10 09:00", 10.0),
        ("a", "purchase", "2026-01-10 18:00", 30.0),
        ("a", "view", "2026-01-11", None),
        ("a", "purchase", "2026-02-20", 20.0),
        ("a", "purchase", "2026-03-25", 50.0),
        ("a", "purchase", "2026-03-26", -5.0),
        ("a", "purchase", "2026-04-02", 99.0),
        # b: one purchase in the last 30 days, with no amount recorded.
        ("b", "purchase", "2026-03-15", None),
        # c: views only; d: first seen after the cutoff, not a customer yet.
        ("c", "view", "2026-03-30", None),
        ("d", "purchase", "2026-04-01", 7.0),
    ]
    events = pd.DataFrame(rows, columns=["customer_id", "event_type", "occurred_at", "amount"])
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], format="ISO8601")
    events["occurred_at"] = events["occurred_at"].dt.tz_localize(timezone)

    summary = purchase_summary(
        events, CUTOFF.tz_localize(timezone), horizon_days=30, target_event="purchase"
    )

    # Customers a, b, c. a: first day 01-10, repeat days 02-20, 03-25, 03-26 (x=3), last
    # 03-26 (t_x=75), age 80; repeat days' spend 20, 50, -5 (mean 21.67); spent 45 in the
    # 30 days before the cutoff. b: a first purchase only, age 16, spend 0. c: no purchase.
    np.testing.assert_array_equal(summary.repeats, [3, 0, 0])
    np.testing.assert_array_equal(summary.last_repeat, [75, 0, 0])
    np.testing.assert_array_equal(summary.age, [80, 16, np.nan])
    np.testing.assert_allclose(summary.repeat_spend, [65 / 3, np.nan, np.nan])
    np.testing.assert_array_equal(summary.recent_spend, [45, 0, 0])
    assert forecast_total(CARRIED_FORWARD, summary, 30) == 45


@pytest.mark.parametrize("rows", [2, 0], ids=["views only", "no events"])
def test_customers_without_a_purchase_summarise_as_having_none(rows):
    events = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "event_type": ["view", "view"],
            "occurred_at": pd.to_datetime(["2026-01-01", "2026-01-02"]),
            "amount": [None, None],
        }
    ).head(rows)

    summary = purchase_summary(events, CUTOFF, horizon_days=30, target_event="purchase")

    np.testing.assert_array_equal(summary.repeats, np.zeros(rows))
    np.testing.assert_array_equal(summary.age, np.full(rows, np.nan))
    assert forecast_total(CARRIED_FORWARD, summary, 30) == 0


def simulated_customers(rng: np.random.Generator, n: int, age: float, horizon: float):
    """BG/NBD's story (gamma purchase rates, a beta chance of dropping out after each
    purchase) and Gamma-Gamma's (gamma spends around a gamma-distributed mean), from each
    customer's first purchase at time 0: their history at `age`, their spend in the
    `horizon` after, and the mean spend of their purchases."""
    r, alpha, a, b = 0.8, 8.0, 0.9, 3.0
    p, q, v = 4.0, 3.5, 60.0
    rate = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    mean_spend = 1 / rng.gamma(q, 1 / v, n)  # p times this is a purchase's expected value
    time, alive = np.zeros(n), np.ones(n, bool)
    repeats, last = np.zeros(n), np.zeros(n)
    total_before, later = np.zeros(n), np.zeros(n)
    for _ in range(400):
        alive &= rng.random(n) >= drop
        time = time + rng.exponential(1 / rate)
        spend = rng.gamma(p, mean_spend)
        observed = alive & (time <= age)
        repeats += observed
        last = np.where(observed, time, last)
        total_before += np.where(observed, spend, 0)
        later += np.where(alive & (time > age) & (time <= age + horizon), spend, 0)
        alive &= time <= age + horizon
        if not alive.any():
            break
    mean_repeat = np.where(repeats > 0, total_before / np.maximum(repeats, 1), np.nan)
    history = RepeatHistory(repeats, last, np.full(n, age), mean_repeat)
    return history, later, p * mean_spend


def test_bgnbd_x_gamma_gamma_forecasts_the_total_of_customers_that_follow_its_story():
    history, realized, _ = simulated_customers(np.random.default_rng(11), 20_000, 180.0, 90.0)

    forecast = expected_spend(history, 90.0)

    assert forecast.sum() / realized.sum() == pytest.approx(1.0, abs=0.05)
    # The ones who bought often and lately are worth more than the ones who went quiet.
    busy = (history.repeats >= 3) & (history.last_repeat > 150)
    quiet = (history.repeats >= 3) & (history.last_repeat < 60)
    assert forecast[busy].mean() > 3 * forecast[quiet].mean()


def test_gamma_gamma_shrinks_a_customers_mean_spend_towards_everyones():
    history, _, true_spend = simulated_customers(np.random.default_rng(12), 20_000, 180.0, 90.0)

    day_spend = expected_day_spend(history)

    repeat = history.repeats > 0
    own_error = np.mean((history.repeat_spend[repeat] - true_spend[repeat]) ** 2)
    shrunk_error = np.mean((day_spend[repeat] - true_spend[repeat]) ** 2)
    assert shrunk_error < 0.8 * own_error
    # Without a repeat purchase: everyone's mean, p v / (q - 1) = 4 x 60 / 2.5.
    assert day_spend[~repeat] == pytest.approx(96, rel=0.1)


def test_too_few_repeat_buyers_are_refused_by_name():
    history = RepeatHistory(np.zeros(50), np.zeros(50), np.full(50, 30.0), np.full(50, np.nan))
    with pytest.raises(ValueError, match="0 customers with a repeat purchase"):
        expected_spend(history, 30.0)


def summary_of(history: RepeatHistory, recent_spend: np.ndarray) -> PurchaseSummary:
    return PurchaseSummary(
        history.repeats, history.last_repeat, history.age, history.repeat_spend, recent_spend
    )


@pytest.fixture(scope="module")
def level_inputs() -> LevelInputs:
    rng = np.random.default_rng(4)
    before, *_ = simulated_customers(rng, 3_000, 120.0, 30.0)
    now, *_ = simulated_customers(rng, 3_000, 150.0, 30.0)
    return LevelInputs(
        summary_of(before, np.full(3_000, 2.0)), summary_of(now, np.full(3_000, 3.0))
    )


@pytest.mark.parametrize(
    ("realized_near", "chosen"), [(CARRIED_FORWARD, CARRIED_FORWARD), (DROPOUT, DROPOUT)]
)
def test_the_forecaster_nearer_what_came_in_forecasts_from_the_data_cutoff(
    level_inputs, realized_near, chosen
):
    carried = forecast_total(CARRIED_FORWARD, level_inputs.before, 30)
    dropout = forecast_total(DROPOUT, level_inputs.before, 30)
    assert abs(np.log(carried / dropout)) > 0.3  # far enough apart to tell
    realized = 1.05 * (carried if realized_near == CARRIED_FORWARD else dropout)

    level = forecast_level(level_inputs, realized, 30)

    assert level.kind == chosen
    assert level.checks == pytest.approx(
        {CARRIED_FORWARD: carried / realized, DROPOUT: dropout / realized}
    )
    assert level.total == pytest.approx(forecast_total(chosen, level_inputs.now, 30))
    assert level.failures == {}


def test_without_spend_to_judge_on_or_a_dropout_fit_the_level_is_carried_forward(level_inputs):
    nothing_judged = forecast_level(level_inputs, 0.0, 30)
    assert (nothing_judged.kind, nothing_judged.checks) == (CARRIED_FORWARD, {})
    assert nothing_judged.total == 9_000

    one_time_buyers = summary_of(
        RepeatHistory(np.zeros(40), np.zeros(40), np.full(40, 20.0), np.full(40, np.nan)),
        np.ones(40),
    )
    level = forecast_level(LevelInputs(one_time_buyers, one_time_buyers), 50.0, 30)
    assert (level.kind, level.total, level.checks) == (CARRIED_FORWARD, 40, {CARRIED_FORWARD: 0.8})
    assert "repeat purchase" in level.failures[DROPOUT]

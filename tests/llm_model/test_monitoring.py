"""Realized outcomes of a score run from its customers' conversions, propensities and the
run's own deciles."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from llm_model.metrics import value_gini
from llm_model.monitoring import PublishedValues, realized_outcome


def test_lift_is_that_of_the_runs_own_first_decile():
    # The run put c and d in decile 1, a and b in decile 2, whatever the propensities say.
    outcome = realized_outcome(
        converted=np.array([1, 1, 0, 1]),
        propensity=np.array([0.9, 0.8, 0.2, 0.1]),
        decile=np.array([2, 2, 1, 1]),
    )
    assert outcome.top_decile_lift == pytest.approx(0.5 / 0.75)
    pd.testing.assert_frame_equal(
        outcome.deciles,
        pd.DataFrame(
            {"decile": [1, 2], "customers": [2, 2], "expected": [0.3, 1.7], "actual": [1, 2]}
        ),
    )
    assert outcome.roc_auc == pytest.approx(2 / 3)
    assert outcome.note is None


def test_when_every_customer_converted_auc_is_undefined_and_said_so():
    p = np.array([0.9, 0.6, 0.3])
    outcome = realized_outcome(np.ones(3), p, np.array([1, 2, 3]))
    assert (outcome.roc_auc, outcome.pr_auc) == (None, None)
    assert outcome.note == (
        "every customer converted in the horizon: ROC AUC and PR AUC are undefined"
    )
    assert outcome.top_decile_lift == 1.0
    assert outcome.brier == pytest.approx(brier_score_loss(np.ones(3), p))
    assert (outcome.n_customers, outcome.n_converted, outcome.base_rate) == (3, 3, 1.0)


def test_value_figures_are_judged_on_the_revenue_that_came_in():
    # Value decile 1 (customers a and d) brought 30 of the 50 that came in; c refunded more
    # than they bought, which the query already counts as 0.
    values = PublishedValues(
        expected_value=np.array([20.0, 5.0, 1.0, 12.0]),
        value_decile=np.array([1, 2, 2, 1]),
        spend=np.array([25.0, 20.0, 0.0, 5.0]),
        missing_amounts=2,
    )
    outcome = realized_outcome(
        np.array([1, 1, 0, 1]), np.array([0.9, 0.5, 0.1, 0.6]), np.array([1, 2, 2, 1]), values
    )
    assert outcome.realized_revenue == 50.0
    assert outcome.predicted_revenue == 38.0
    assert outcome.value_mae == pytest.approx((5 + 15 + 1 + 7) / 4)
    assert outcome.top_decile_revenue_share == pytest.approx(30 / 50)
    assert outcome.value_gini == pytest.approx(value_gini(values.spend, values.expected_value))
    assert outcome.note == "2 target event(s) in the horizon had no amount: counted as 0 spend"
    pd.testing.assert_frame_equal(
        outcome.deciles[["decile", "value_customers", "expected_revenue", "actual_revenue"]],
        pd.DataFrame(
            {
                "decile": [1, 2],
                "value_customers": [2, 2],
                "expected_revenue": [32.0, 6.0],
                "actual_revenue": [30.0, 20.0],
            }
        ),
    )
    assert set(outcome.columns()) >= {"realized_revenue", "value_gini", "value_mae"}


def test_a_horizon_without_revenue_leaves_the_value_ranking_undefined_and_says_so():
    values = PublishedValues(np.ones(3), np.array([1, 2, 3]), np.zeros(3))
    outcome = realized_outcome(np.zeros(3), np.full(3, 0.2), np.array([1, 2, 3]), values)
    assert (outcome.value_gini, outcome.top_decile_revenue_share) == (None, None)
    assert outcome.realized_revenue == 0.0 and outcome.value_mae == 1.0
    assert "no revenue in the horizon" in outcome.note

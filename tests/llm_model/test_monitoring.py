"""Realized outcomes of a score run from its customers' conversions, propensities and the
run's own deciles."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from llm_model.monitoring import realized_outcome


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

"""Reason codes: summing contributions per event type, naming static features, and the
recurrent model's gradient x input against finite differences."""

import numpy as np
import pytest
from scipy.special import logit

from llm_model.attribution import (
    INFERENCE_BATCH,
    attribution_function,
    scores_with_reasons,
    sum_by_token,
    token_names,
)
from llm_model.reasons import static_label
from llm_model.sequences import Features
from llm_model.training import validation_split


def test_sum_by_token_against_a_hand_computed_example():
    tokens = np.array([[3, 4, 3, 0], [2, 0, 0, 0]])
    per_event = np.array([[0.5, -1.0, 0.25, 0.0], [2.0, 0.0, 0.0, 0.0]])
    expected = np.array([[0.0, 0.0, 0.0, 0.75, -1.0], [0.0, 0.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(sum_by_token(tokens, per_event, 5), expected)


def test_static_labels_read_as_words():
    assert static_label("count_add_to_cart_7d") == "add_to_cart events, last 7 days"
    assert static_label("recency") == "days since last event"


# --- the recurrent model's gradient x input ----------------------------------------------

# Central differences of a float32 network. Its log-odds carry rounding errors of ~1e-6; over
# a step of 2h = 2e-2 that is ~1e-4 in a slope (times |static - mean|, at most ~5), and the
# truncation error (h^2 times the third derivative) is as small: hence rtol 1e-2 and atol
# 2e-3 against contributions up to ~1. A smaller step would drown the slope in rounding.
STEP = 1e-2


def log_odds(trained, features: Features, static: np.ndarray) -> np.ndarray:
    p = trained.probability(features.tokens, features.numeric, static).numpy()
    return logit(p.astype(np.float64))


def test_static_contributions_match_finite_differences(training, trained, tiny_config):
    """d logit / d static_j * (static_j - training mean_j), the gradient taken by the library
    in one traced pass, against central differences of the network's own log-odds."""
    features = training.holdout.features
    static = features.static
    n_static = static.shape[1]
    attribute = attribution_function(trained.network, features.tokens.shape[1], n_static)
    _, _, per_static = attribute(features.tokens, features.numeric, static)
    fit_part, _ = validation_split(training.train, tiny_config.validation_share)
    mean = fit_part.features.static.astype(np.float64).mean(axis=0)

    base = log_odds(trained, features, static)
    estimate, smooth = np.empty(static.shape), np.empty(static.shape, dtype=bool)
    for j in range(n_static):
        up, down = static.copy(), static.copy()
        up[:, j] += STEP
        down[:, j] -= STEP
        # The steps as float32 rounded them, not STEP itself (a 1e-4 relative difference).
        step_up = up[:, j].astype(np.float64) - static[:, j]
        step_down = static[:, j] - down[:, j].astype(np.float64)
        above, below = log_odds(trained, features, up), log_odds(trained, features, down)
        slope = (above - below) / (step_up + step_down)
        estimate[:, j] = slope * (static[:, j] - mean[j])
        # The dense layer is a ReLU: where a unit switches inside [x - h, x + h] the central
        # difference averages two slopes. The one-sided differences then disagree; those
        # points say nothing about the gradient and are left out.
        smooth[:, j] = np.isclose(
            (above - base) / step_up, (base - below) / step_down, rtol=2e-2, atol=2e-3
        )

    assert smooth.mean() > 0.95
    assert np.abs(estimate[smooth]).max() > 0.1  # the static inputs matter: a real check
    np.testing.assert_allclose(per_static.numpy()[smooth], estimate[smooth], rtol=1e-2, atol=2e-3)


@pytest.mark.parametrize("batch_size", [INFERENCE_BATCH, 4])
def test_the_recurrent_reasons_are_the_largest_contributions(
    training, trained, reasons_are_the_largest, full_width_contributions, batch_size
):
    """In one batch or in many length buckets of every width, each customer's reasons are
    their largest contributions at full width, in the input's order."""
    features = training.holdout.features
    contributions, names = full_width_contributions(trained, features)
    _, reasons = scores_with_reasons(
        trained.attribution, features, training.vocab, features.static_names, batch_size
    )
    reasons_are_the_largest(reasons, contributions, names)


def test_no_reason_names_an_event_type_missing_from_the_sequence(training, trained):
    features = training.holdout.features
    names = token_names(training.vocab)
    _, reasons = trained.raw_scores_with_reasons(features)
    for row, customer in enumerate(reasons.itertuples(index=False)):
        held = {names[token] for token in np.unique(features.tokens[row])}
        missing = {reason for reason in customer if reason in names} - held
        assert not missing, f"{features.customer_ids[row]}: {sorted(missing)}"

"""Reason codes of the recurrent model: summing contributions per event type, gradient x
input against finite differences, the largest contributions in any length bucket, and a
customer built by hand read with their own values and directions."""

import re

import numpy as np
import pytest
from scipy.special import logit

from llm_model.attribution import (
    INFERENCE_BATCH,
    attribute_in_batches,
    attribution_function,
    network_reasons,
    sum_by_token,
)
from llm_model.sequences import N_RESERVED, NO_HISTORY, Features
from llm_model.training import validation_split


def test_sum_by_token_against_a_hand_computed_example():
    tokens = np.array([[3, 4, 3, 0], [2, 0, 0, 0]])
    per_event = np.array([[0.5, -1.0, 0.25, 0.0], [2.0, 0.0, 0.0, 0.0]])
    expected = np.array([[0.0, 0.0, 0.0, 0.75, -1.0], [0.0, 0.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(sum_by_token(tokens, per_event, 5), expected)


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
    _, _, per_static, d_static = attribute(features.tokens, features.numeric, static)
    fit_part, _ = validation_split(training.train, tiny_config.validation_share)
    mean = fit_part.features.static.astype(np.float64).mean(axis=0)

    base = log_odds(trained, features, static)
    estimate, smooth = np.empty(static.shape), np.empty(static.shape, dtype=bool)
    slopes = np.empty(static.shape)
    for j in range(n_static):
        up, down = static.copy(), static.copy()
        up[:, j] += STEP
        down[:, j] -= STEP
        # The steps as float32 rounded them, not STEP itself (a 1e-4 relative difference).
        step_up = up[:, j].astype(np.float64) - static[:, j]
        step_down = static[:, j] - down[:, j].astype(np.float64)
        above, below = log_odds(trained, features, up), log_odds(trained, features, down)
        slope = (above - below) / (step_up + step_down)
        slopes[:, j] = slope
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
    # The gradient itself, which a hybrid's reasons spread over its booster's features.
    np.testing.assert_allclose(d_static.numpy()[smooth], slopes[smooth], rtol=1e-2, atol=2e-3)


@pytest.mark.parametrize("batch_size", [INFERENCE_BATCH, 4])
def test_the_recurrent_reasons_are_the_largest_contributions(
    training, trained, reasons_are_the_largest, gradient_times_input, batch_size
):
    """In one batch or in many length buckets of every width, each customer's reasons are
    their largest contributions at full width, in the input's order."""
    features = training.holdout.features
    attribution = attribute_in_batches(
        trained.attribution, features, training.vocab.size, batch_size
    )
    reasons = network_reasons(attribution, attribution.static, features.static, trained.manifest)
    reasons_are_the_largest(
        reasons, gradient_times_input(trained.network, features).contributions()
    )


SEQUENCE_REASON = re.compile(r"^(?P<n>\d+) (?P<event_type>\S+) among recent events \(")


def test_sequence_reasons_name_the_event_types_of_the_sequence_with_their_counts(training, trained):
    """With the static features' contributions left out, every reason is a token of the
    customer's sequence, read with its count there."""
    features = training.holdout.features
    attribution = trained.attribute(features)
    without_static = np.zeros_like(attribution.static)
    reasons = network_reasons(attribution, without_static, features.static, trained.manifest)
    named = 0
    for row, customer in enumerate(reasons[["reason_1", "reason_2", "reason_3"]].itertuples()):
        for reason in customer[1:]:
            if reason == "no event in the last 365 days (lowers)":
                assert features.tokens[row, 0] == NO_HISTORY
            elif isinstance(reason, str):
                match = SEQUENCE_REASON.match(reason)
                token = training.vocab.event_types.index(match["event_type"]) + N_RESERVED
                assert int(match["n"]) == (features.tokens[row] == token).sum(), reason
                named += 1
    assert named > len(features)  # most customers have several types: a real check


def test_a_customer_built_by_hand_reads_their_own_values_and_directions(
    trained, hand_case, gradient_times_input
):
    """Their reasons carry their counts, days and spend, (raises) or (lowers) as the sign
    of the stored weight, which is their contribution computed here."""
    features = hand_case.features(trained.manifest)
    _, reasons = trained.raw_scores_with_reasons(features)
    contributions = gradient_times_input(trained.network, features).contributions()
    hand_case.assert_reasons(reasons, contributions, trained.manifest)

"""Reason codes: summing contributions per event type and naming static features."""

import numpy as np

from llm_model.attribution import static_label, sum_by_token


def test_sum_by_token_against_a_hand_computed_example():
    tokens = np.array([[3, 4, 3, 0], [2, 0, 0, 0]])
    per_event = np.array([[0.5, -1.0, 0.25, 0.0], [2.0, 0.0, 0.0, 0.0]])
    expected = np.array([[0.0, 0.0, 0.0, 0.75, -1.0], [0.0, 0.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(sum_by_token(tokens, per_event, 5), expected)


def test_static_labels_read_as_words():
    assert static_label("count_add_to_cart_7d") == "add_to_cart events, last 7 days"
    assert static_label("recency") == "days since last event"

"""Drift references and the population stability index, against hand computations."""

from math import log

import numpy as np
import pytest

from llm_model.drift import (
    SHARE_FLOOR,
    BinCounts,
    Bins,
    DriftReference,
    bin_counts,
    bin_shares,
    psi,
    reference_bins,
)

# Ten rows of a count feature, half of them zero. Their deciles ("lower": row
# floor(q * 9) of the sorted rows) are 0, 0, 0, 0, 0, 1, 1, 2, 3: four distinct cuts.
COUNTS = np.array([3, 0, 1, 0, 10, 0, 2, 0, 1, 0], dtype=np.float32)
# (-inf, 0]: five rows; (0, 1]: two; (1, 2], (2, 3], (3, inf): one each.
COUNT_BINS = Bins((0.0, 1.0, 2.0, 3.0), (0.5, 0.2, 0.1, 0.1, 0.1))


def test_reference_bins_cut_once_where_many_rows_share_a_value():
    assert reference_bins(COUNTS) == COUNT_BINS


def test_continuous_values_get_ten_bins_of_a_tenth_each():
    values = np.arange(100, dtype=np.float64)
    bins = reference_bins(values)
    assert bins.edges == (9.0, 19.0, 29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0)
    assert bins.shares == pytest.approx((0.1,) * 10)


def test_a_value_on_a_cut_falls_in_the_bin_below_it():
    edges = (0.0, 1.0)
    np.testing.assert_array_equal(
        bin_counts(np.array([-1.0, 0.0, 0.5, 1.0, 7.0]), edges), [2, 2, 1]
    )


def test_psi_against_a_hand_computation_with_an_empty_bin():
    # Rows 0, 1 x4, 2, 5 x4: shares 0.1, 0.4, 0.1, 0 (empty: the floor), 0.4.
    actual = bin_shares(bin_counts(np.array([0, 1, 1, 1, 1, 2, 5, 5, 5, 5]), COUNT_BINS.edges))
    np.testing.assert_allclose(actual, [0.1, 0.4, 0.1, 0.0, 0.4])
    by_hand = (
        (0.1 - 0.5) * log(0.1 / 0.5)
        + (0.4 - 0.2) * log(0.4 / 0.2)
        + 0.0
        + (SHARE_FLOOR - 0.1) * log(SHARE_FLOOR / 0.1)
        + (0.4 - 0.1) * log(0.4 / 0.1)
    )
    assert by_hand == pytest.approx(1.8883777, abs=1e-7)
    assert psi(np.array(COUNT_BINS.shares), actual) == pytest.approx(by_hand, rel=1e-12)


def test_psi_of_equal_shares_is_zero_and_it_is_never_negative():
    shares = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    assert psi(shares, shares) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        assert psi(a, b) >= 0.0


def test_a_constant_feature_has_two_bins_and_a_finite_psi():
    bins = reference_bins(np.full(8, 3.0))
    assert bins == Bins((3.0,), (1.0, 0.0))
    same = bin_shares(bin_counts(np.full(5, 3.0), bins.edges))
    assert psi(np.array(bins.shares), same) == 0.0
    higher = bin_shares(bin_counts(np.full(5, 4.0), bins.edges))
    # Both bins swap from all to the floor: 2 * (1 - floor) * ln(1 / floor).
    by_hand = 2 * (1 - SHARE_FLOOR) * log(1 / SHARE_FLOOR)
    assert psi(np.array(bins.shares), higher) == pytest.approx(by_hand, rel=1e-12)


def test_no_rows_are_refused_clearly():
    with pytest.raises(ValueError, match="at least one row"):
        reference_bins(np.array([]))
    with pytest.raises(ValueError, match="no rows to measure drift on"):
        bin_shares(np.zeros(3, dtype=np.int64))


def test_a_reference_measures_its_own_rows_as_stable_and_partitions_add_up():
    rng = np.random.default_rng(1)
    static = np.column_stack(
        [rng.exponential(2.0, 500), rng.poisson(0.3, 500), np.zeros(500)]
    ).astype(np.float32)
    scores = rng.beta(1.0, 8.0, 500)
    names = ("recency", "count_visit_7d", "count_purchase_7d", "propensity")
    reference = DriftReference(names, tuple(reference_bins(c) for c in [*static.T, scores]))

    whole = reference.counts(static, scores)
    halves = reference.counts(static[:200], scores[:200]) + reference.counts(
        static[200:], scores[200:]
    )
    for together, summed in zip(whole.counts, halves.counts, strict=True):
        np.testing.assert_array_equal(together, summed)
    assert reference.psi(whole) == {name: 0.0 for name in names}

    shifted = reference.counts(static + 1.0, scores)
    drift = reference.psi(shifted)
    assert drift["propensity"] == 0.0
    assert min(drift["recency"], drift["count_visit_7d"], drift["count_purchase_7d"]) > 1.0


def test_counts_of_a_reference_are_added_column_by_column():
    one = BinCounts((np.array([1, 2]), np.array([0, 1, 3])))
    two = BinCounts((np.array([4, 0]), np.array([2, 2, 2])))
    total = one + two
    np.testing.assert_array_equal(total.counts[0], [5, 2])
    np.testing.assert_array_equal(total.counts[1], [2, 3, 5])

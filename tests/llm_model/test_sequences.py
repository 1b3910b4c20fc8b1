"""Tests for llm_model.sequences: hand-computed encodings and the point-in-time guarantees."""

import json

import numpy as np
import pandas as pd
import pytest

from llm_model.sequences import (
    NO_HISTORY,
    PAD,
    UNKNOWN,
    Features,
    SequenceConfig,
    Vocabulary,
    build_features,
    build_training_set,
    non_finite_inputs,
    snapshot_cutoffs,
    static_names,
)

CUTOFF = pd.Timestamp("2024-03-10")
HAND_CONFIG = SequenceConfig(max_len=4, windows_days=(7, 30), lookback_days=60)
VOCAB = Vocabulary(("purchase", "view"))  # purchase -> 3, view -> 4
PURCHASE, VIEW = 3, 4
AS_OF = pd.Timestamp("2024-07-01")


def _events(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    customer_id, event_type, occurred_at, amount = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "customer_id": list(customer_id),
            "event_type": list(event_type),
            "occurred_at": pd.to_datetime(list(occurred_at), format="ISO8601"),
            "amount": np.array(amount, dtype=np.float64),
        }
    )


def _hand_events() -> pd.DataFrame:
    nan = np.nan
    rows = [
        ("a", "purchase", "2024-03-11", 7.0),  # after the cutoff: label, not a feature
        ("a", "view", "2024-03-09", nan),
        # Older than the 60-day lookback: not in the sequence, in the static features.
        ("b", "view", "2024-01-01", nan),
        ("b", "view", "2024-01-10", nan),  # exactly cutoff - 60 days: outside (t - 60d, t]
        ("a", "purchase", "2024-03-03", 20.0),
        ("b", "search", "2024-03-05", nan),  # not in the vocabulary
        ("a", "purchase", "2024-03-10", 5.0),  # exactly at the cutoff: a feature
        ("a", "view", "2024-03-01", nan),
    ]
    return _events(rows)


def _random_events(seed: int = 7, n_customers: int = 40, n_events: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 200 * 86_400, n_events)
    amount = np.where(rng.random(n_events) < 0.3, rng.gamma(2.0, 20.0, n_events).round(2), np.nan)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in rng.integers(0, n_customers, n_events)],
            "event_type": rng.choice(["view", "cart", "purchase", "search"], n_events),
            "occurred_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(seconds, unit="s"),
            "amount": amount,
        }
    )


def _assert_same_features(left: Features, right: Features) -> None:
    np.testing.assert_array_equal(left.customer_ids, right.customer_ids)
    np.testing.assert_array_equal(left.tokens, right.tokens)
    np.testing.assert_array_equal(left.numeric, right.numeric)
    np.testing.assert_array_equal(left.static, right.static)
    assert left.static_names == right.static_names


def _static_row(features: Features, row: int) -> dict[str, float]:
    return dict(zip(features.static_names, features.static[row].tolist(), strict=True))


# --- hand-computed encodings -------------------------------------------------------------------


def test_hand_computed_sequences_in_requested_order() -> None:
    features = build_features(_hand_events(), ["c", "a", "b"], CUTOFF, VOCAB, HAND_CONFIG)

    assert features.customer_ids.tolist() == ["c", "a", "b"]
    assert features.tokens.dtype == np.int32 and features.numeric.dtype == np.float32
    expected_tokens = [
        [NO_HISTORY, PAD, PAD, PAD],
        [VIEW, PURCHASE, VIEW, PURCHASE],  # Mar 1, 3, 9, 10 (the Mar 11 purchase is future)
        [UNKNOWN, PAD, PAD, PAD],  # January is outside the lookback; "search" is unknown
    ]
    np.testing.assert_array_equal(features.tokens, expected_tokens)
    # (days since previous event, days to cutoff, amount), all log1p, 0 on padding
    expected_numeric = np.log1p(
        [
            [[0, 0, 0]] * 4,
            [[0, 9, 0], [2, 7, 20], [6, 1, 0], [1, 0, 5]],
            [[0, 5, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
        ]
    ).astype(np.float32)
    np.testing.assert_allclose(features.numeric, expected_numeric, rtol=1e-6)


def test_hand_computed_static_features() -> None:
    features = build_features(_hand_events(), ["c", "a", "b"], CUTOFF, VOCAB, HAND_CONFIG)

    assert features.static_names == (
        "recency",
        "frequency",
        "monetary",
        "target_recency",
        "tenure",
        "count_purchase_7d",
        "count_purchase_30d",
        "count_view_7d",
        "count_view_30d",
    )
    assert features.static_names == static_names(VOCAB, HAND_CONFIG)
    no_history = HAND_CONFIG.lookback_days
    expected = {
        "c": [no_history, 0, 0, no_history, 0, 0, 0, 0, 0],
        # Mar 3 is exactly 7 days back, outside (cutoff - 7d, cutoff]
        "a": [0, 4, 25, 0, 9, 1, 2, 1, 2],
        # The whole history: the January views count in frequency and tenure (Jan 1 is 69
        # days before Mar 10), not in the 7- and 30-day counts.
        "b": [5, 3, 0, no_history, 69, 0, 0, 0, 0],
    }
    for row, customer in enumerate(["c", "a", "b"]):
        actual = _static_row(features, row)
        want = dict(zip(features.static_names, np.log1p(expected[customer]), strict=True))
        assert actual == pytest.approx(want, rel=1e-6), customer
    assert features.static.dtype == np.float32 and np.isfinite(features.static).all()


def test_truncation_keeps_most_recent_events_and_their_true_gaps() -> None:
    days = ["2024-03-01", "2024-03-02", "2024-03-04", "2024-03-05", "2024-03-08", "2024-03-09"]
    types = ["view", "view", "purchase", "view", "purchase", "view"]
    rows = [("a", t, d, np.nan) for t, d in zip(types, days, strict=True)]
    config = SequenceConfig(max_len=3, windows_days=(7,), lookback_days=60)

    features = build_features(_events(rows), ["a"], CUTOFF, VOCAB, config)

    np.testing.assert_array_equal(features.tokens, [[VIEW, PURCHASE, VIEW]])
    # The first kept event (Mar 5) still measures its gap to the dropped Mar 4 event.
    expected_gaps = np.log1p([1, 3, 1]).astype(np.float32)
    np.testing.assert_allclose(features.numeric[0, :, 0], expected_gaps, rtol=1e-6)
    assert _static_row(features, 0)["frequency"] == pytest.approx(np.log1p(6))


def test_same_features_whatever_the_row_order_and_timestamp_unit() -> None:
    events = _random_events()
    # Same-instant ties of one customer must not depend on the input row order.
    tie = _events(
        [
            ("c01", "cart", "2024-02-01", 3.0),
            ("c01", "view", "2024-02-01", 1.0),
            ("c01", "view", "2024-02-01", 2.0),
        ]
    )
    events = pd.concat([events, tie], ignore_index=True)
    cutoff, ids = pd.Timestamp("2024-04-10"), sorted(events["customer_id"].unique())
    vocab = Vocabulary.fit(events)
    config = SequenceConfig(max_len=8)
    base = build_features(events, ids, cutoff, vocab, config)

    for reordered in (events.iloc[::-1], events.sample(frac=1.0, random_state=3)):
        _assert_same_features(base, build_features(reordered, ids, cutoff, vocab, config))
    for unit in ("s", "ms", "ns"):
        converted = events.assign(occurred_at=events["occurred_at"].astype(f"datetime64[{unit}]"))
        _assert_same_features(base, build_features(converted, ids, cutoff, vocab, config))


def test_customers_without_history_get_a_no_history_row() -> None:
    features = build_features(_hand_events(), ["nobody", "a"], CUTOFF, VOCAB, HAND_CONFIG)

    np.testing.assert_array_equal(features.tokens[0], [NO_HISTORY, PAD, PAD, PAD])
    assert not features.numeric[0].any()
    assert (features.tokens != PAD).any(axis=1).all()  # no fully masked row
    empty = _hand_events().iloc[:0]
    only_empty = build_features(empty, ["x", "y"], CUTOFF, VOCAB, HAND_CONFIG)
    np.testing.assert_array_equal(only_empty.tokens[:, 0], [NO_HISTORY, NO_HISTORY])
    np.testing.assert_array_equal(only_empty.static, np.repeat(features.static[:1], 2, axis=0))


# --- static features over the whole history -----------------------------------------------------

WHOLE_CUTOFF = pd.Timestamp("2024-04-10")
# A 90-day count window reaches past the 60-day lookback: it counts from the whole history too.
WHOLE_CONFIG = SequenceConfig(max_len=5, windows_days=(7, 30, 90), lookback_days=60)
WHOLE_VOCAB = Vocabulary(("cart", "purchase", "view"))


def _whole_history_events(seed: int = 11) -> pd.DataFrame:
    """Customers seen only before the 60-day lookback, only inside it, in both, and a refund;
    each also with events after the cutoff, which must change nothing."""
    rng = np.random.default_rng(seed)
    spans = {  # days before the cutoff: (most, least); negative is after the cutoff
        "before": [(400, 61)],
        "inside": [(59, 0)],
        "both": [(300, 61), (59, 0)],
        "refund": [(200, 0)],
    }
    frames = []
    for customer, ranges in spans.items():
        for most, least in ranges:
            n = 15
            seconds = rng.integers(least * 86_400, most * 86_400, n)
            frames.append(
                pd.DataFrame(
                    {
                        "customer_id": customer,
                        "event_type": rng.choice(["view", "cart", "purchase", "search"], n),
                        "occurred_at": WHOLE_CUTOFF - pd.to_timedelta(seconds, unit="s"),
                        "amount": np.where(rng.random(n) < 0.7, rng.gamma(2.0, 20.0, n), np.nan),
                    }
                )
            )
        after = WHOLE_CUTOFF + pd.to_timedelta(rng.integers(1, 40 * 86_400, 3), unit="s")
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": customer,
                    "event_type": "purchase",
                    "occurred_at": after,
                    "amount": 9.0,
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    # Net refunds: the monetary feature floors the sum at 0.
    refunds = (events["customer_id"] == "refund") & (events["event_type"] == "purchase")
    events.loc[refunds, "amount"] = -events.loc[refunds, "amount"].fillna(1.0)
    return events


def _static_by_hand(
    events: pd.DataFrame,
    customer_ids: list[str],
    cutoff: pd.Timestamp,
    vocab: Vocabulary,
    config: SequenceConfig,
) -> pd.DataFrame:
    """The reference static features in plain pandas, customer by customer, from every event
    at or before the cutoff; log1p of each, as the library stores them."""
    day = pd.Timedelta(days=1)
    none_days = config.no_history_days
    rows = []
    for customer in customer_ids:
        own = events[(events["customer_id"] == customer) & (events["occurred_at"] <= cutoff)]
        target = own[own["event_type"] == config.target_event]
        row = {
            "recency": (cutoff - own["occurred_at"].max()) / day if len(own) else none_days,
            "frequency": len(own),
            "monetary": max(target["amount"].fillna(0.0).sum(), 0.0),
            "target_recency": (
                (cutoff - target["occurred_at"].max()) / day if len(target) else none_days
            ),
            "tenure": (cutoff - own["occurred_at"].min()) / day if len(own) else 0.0,
        }
        for event_type in vocab.event_types:
            for w in config.windows_days:
                recent = own["occurred_at"] > cutoff - pd.Timedelta(days=w)
                row[f"count_{event_type}_{w}d"] = int(
                    (recent & (own["event_type"] == event_type)).sum()
                )
        rows.append(row)
    return np.log1p(pd.DataFrame(rows, index=customer_ids, dtype=np.float64))


def test_static_features_cover_the_whole_history_as_a_plain_computation_does() -> None:
    events = _whole_history_events()
    ids = ["before", "inside", "both", "refund", "none"]

    features = build_features(events, ids, WHOLE_CUTOFF, WHOLE_VOCAB, WHOLE_CONFIG)

    expected = _static_by_hand(events, ids, WHOLE_CUTOFF, WHOLE_VOCAB, WHOLE_CONFIG)
    assert features.static_names == tuple(expected.columns)
    np.testing.assert_allclose(features.static, expected.to_numpy(), rtol=1e-6)
    # The reference is not trivially satisfied: the history before the lookback matters.
    in_lookback = events[events["occurred_at"] > WHOLE_CUTOFF - pd.Timedelta(days=60)]
    lookback_only = _static_by_hand(in_lookback, ids, WHOLE_CUTOFF, WHOLE_VOCAB, WHOLE_CONFIG)
    assert not np.allclose(features.static[[0, 2]], lookback_only.to_numpy()[[0, 2]])
    np.testing.assert_allclose(features.static[1], lookback_only.to_numpy()[1], rtol=1e-6)


def test_the_sequence_stays_within_the_lookback() -> None:
    events = _whole_history_events()
    ids = ["before", "inside", "both", "refund", "none"]
    in_lookback = events[events["occurred_at"] > WHOLE_CUTOFF - pd.Timedelta(days=60)]

    whole = build_features(events, ids, WHOLE_CUTOFF, WHOLE_VOCAB, WHOLE_CONFIG)
    recent = build_features(in_lookback, ids, WHOLE_CUTOFF, WHOLE_VOCAB, WHOLE_CONFIG)

    np.testing.assert_array_equal(whole.tokens, recent.tokens)
    np.testing.assert_array_equal(whole.numeric, recent.numeric)


def test_a_customer_seen_only_before_the_lookback_has_statics_and_an_empty_sequence() -> None:
    rows = [
        ("old", "view", "2023-10-01", np.nan),
        ("old", "purchase", "2023-10-03", 30.0),
        ("old", "view", "2024-01-10", np.nan),  # exactly cutoff - 60 days: outside the lookback
    ]

    features = build_features(_events(rows), ["old"], CUTOFF, VOCAB, HAND_CONFIG)

    np.testing.assert_array_equal(features.tokens, [[NO_HISTORY, PAD, PAD, PAD]])
    assert not features.numeric.any()
    # Oct 1 and Oct 3 are 161 and 159 days before Mar 10; Jan 10 is 60.
    expected = np.log1p([60, 3, 30, 159, 161, 0, 0, 0, 0])
    assert _static_row(features, 0) == pytest.approx(
        dict(zip(features.static_names, expected, strict=True)), rel=1e-6
    )


def test_vocabulary_encodes_unknown_and_null_types_as_unknown() -> None:
    vocab = Vocabulary.fit(_hand_events())

    assert vocab.event_types == ("purchase", "search", "view")
    assert vocab.size == 6
    encoded = vocab.encode(pd.Series(["view", "never-seen", None, "purchase"]))
    np.testing.assert_array_equal(encoded, [5, UNKNOWN, UNKNOWN, 3])
    assert encoded.dtype == np.int32
    np.testing.assert_array_equal(Vocabulary(()).encode(np.array(["view"])), [UNKNOWN])


def test_vocabulary_json_round_trip() -> None:
    vocab = Vocabulary.fit(_random_events())

    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))

    assert restored == vocab
    np.testing.assert_array_equal(restored.encode(["cart", "x"]), vocab.encode(["cart", "x"]))
    with pytest.raises(ValueError, match="sorted and unique"):
        Vocabulary.from_dict({"event_types": ["view", "purchase"]})


def test_features_take_and_concat() -> None:
    features = build_features(_hand_events(), ["c", "a", "b"], CUTOFF, VOCAB, HAND_CONFIG)

    taken = features.take(np.array([2, 0]))
    joined = Features.concat([taken, features.take(np.array([1]))])

    assert joined.customer_ids.tolist() == ["b", "c", "a"]
    np.testing.assert_array_equal(joined.tokens, features.tokens[[2, 0, 1]])
    np.testing.assert_array_equal(joined.numeric, features.numeric[[2, 0, 1]])
    np.testing.assert_array_equal(joined.static, features.static[[2, 0, 1]])
    other = build_features(_hand_events(), ["a"], CUTOFF, Vocabulary(("view",)), HAND_CONFIG)
    with pytest.raises(ValueError, match="differ"):
        Features.concat([features, other])


# --- labels ------------------------------------------------------------------------------------


def _labels_by_hand(
    events: pd.DataFrame, customer_ids: np.ndarray, cutoff: pd.Timestamp, config: SequenceConfig
) -> np.ndarray:
    """The reference labels, in plain pandas: a target event in (cutoff, cutoff + horizon]."""
    end = cutoff + pd.Timedelta(days=config.horizon_days)
    when = events["occurred_at"]
    hits = events[(events["event_type"] == config.target_event) & (when > cutoff) & (when <= end)]
    return pd.Index(customer_ids).isin(hits["customer_id"]).astype(np.float32)


def test_label_window_edges() -> None:
    end = CUTOFF + pd.Timedelta(days=HAND_CONFIG.horizon_days)
    edges = {
        "at_cutoff": CUTOFF,  # a feature at the holdout cutoff, a label of the one before
        "at_end": end,
        "after_end": end + pd.Timedelta(microseconds=1),
        "just_after_cutoff": CUTOFF + pd.Timedelta(microseconds=1),
    }
    rows = [(customer, "purchase", str(moment), 1.0) for customer, moment in edges.items()]
    rows.append(("other_type", "view", "2024-03-20", np.nan))
    # Before both cutoffs (Feb 9 and the holdout's Mar 10): everyone exists from Feb 1 on, and
    # a purchase long before either label window puts "purchase" in the vocabulary.
    rows += [(customer, "view", "2024-02-01", np.nan) for customer in [*edges, "other_type"]]
    rows.append(("other_type", "purchase", "2024-01-20", 1.0))

    training = build_training_set(_events(rows), end, HAND_CONFIG, n_snapshots=2, stride_days=30)

    assert training.holdout.cutoff == CUTOFF
    assert training.vocab == VOCAB
    ids = ["after_end", "at_cutoff", "at_end", "just_after_cutoff", "other_type"]
    assert training.holdout.features.customer_ids.tolist() == ids
    np.testing.assert_array_equal(training.holdout.labels, [0, 0, 1, 1, 0])
    assert training.holdout.labels.dtype == np.float32
    # The purchase exactly at the holdout cutoff is the last event of its features instead,
    # and ends the label window (Feb 9, Mar 10] of the training snapshot.
    np.testing.assert_array_equal(training.holdout.features.tokens[1], [VIEW, PURCHASE, PAD, PAD])
    assert training.train.features.customer_ids.tolist() == ids
    np.testing.assert_array_equal(training.train.labels, [0, 1, 0, 0, 0])


def test_spend_in_the_label_window_is_the_target_events_net_amount() -> None:
    end = CUTOFF + pd.Timedelta(days=HAND_CONFIG.horizon_days)
    inside = str(CUTOFF + pd.Timedelta(days=1))
    rows = [
        ("two_buys", "purchase", inside, 10.0),
        ("two_buys", "purchase", str(end), 5.5),
        ("two_buys", "purchase", str(end + pd.Timedelta(microseconds=1)), 100.0),  # after
        ("two_buys", "purchase", str(CUTOFF), 100.0),  # a feature, not spend
        ("refund", "purchase", inside, 30.0),
        ("refund", "purchase", inside, -12.0),
        ("net_negative", "purchase", inside, 5.0),
        ("net_negative", "purchase", inside, -20.0),
        ("no_amount", "purchase", inside, np.nan),
        ("no_amount", "purchase", inside, 7.0),
        ("viewer", "view", inside, 50.0),  # not the target event
    ]
    rows += [(customer, "view", "2024-02-01", np.nan) for customer, *_ in rows]
    training = build_training_set(_events(rows), end, HAND_CONFIG, n_snapshots=2, stride_days=30)

    holdout = training.holdout
    spend = dict(zip(holdout.features.customer_ids, holdout.values, strict=True))
    assert spend == {
        "net_negative": 0.0,
        "no_amount": 7.0,
        "refund": 18.0,
        "two_buys": 15.5,
        "viewer": 0.0,
    }
    np.testing.assert_array_equal(holdout.labels, [1, 1, 1, 1, 0])
    # The training snapshot's window ends at the holdout cutoff: the purchase at it counts.
    train = training.train
    assert dict(zip(train.features.customer_ids, train.values, strict=True)) == {
        **dict.fromkeys(spend, 0.0),
        "two_buys": 100.0,
    }


# --- point in time -----------------------------------------------------------------------------

PIT_CUTOFF = pd.Timestamp("2024-04-10")
PIT_CONFIG = SequenceConfig(max_len=8, windows_days=(7, 30), lookback_days=60)


def _move_after_cutoff(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    after = events["occurred_at"] > PIT_CUTOFF
    seconds = rng.integers(1, 400 * 86_400, int(after.sum()))
    moved = events.copy()
    moved.loc[after, "occurred_at"] = PIT_CUTOFF + pd.to_timedelta(seconds, unit="s")
    return moved


def _delete_after_cutoff(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return events[events["occurred_at"] <= PIT_CUTOFF]


def _add_after_cutoff(events: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    n = 200
    customers = np.r_[events["customer_id"].unique(), ["brand_new"]]
    added = pd.DataFrame(
        {
            "customer_id": rng.choice(customers, n),
            "event_type": rng.choice(["purchase", "view", "brand_new_type"], n),
            "occurred_at": PIT_CUTOFF + pd.to_timedelta(rng.integers(1, 10**12, n), unit="us"),
            "amount": rng.gamma(2.0, 20.0, n),
        }
    )
    # The closest an event can be to the cutoff without being visible at it.
    added.loc[: len(customers) - 1, "customer_id"] = customers
    added.loc[: len(customers) - 1, "occurred_at"] = PIT_CUTOFF + pd.Timedelta(microseconds=1)
    return pd.concat([events, added], ignore_index=True)


@pytest.mark.parametrize("perturb", [_move_after_cutoff, _delete_after_cutoff, _add_after_cutoff])
def test_events_after_the_cutoff_change_no_feature(perturb) -> None:
    events = _random_events()
    ids = [*sorted(events["customer_id"].unique()), "brand_new"]
    vocab = Vocabulary.fit(events[events["occurred_at"] <= PIT_CUTOFF])
    before = build_features(events, ids, PIT_CUTOFF, vocab, PIT_CONFIG)

    perturbed = perturb(events, np.random.default_rng(1))

    assert not perturbed.equals(events)
    _assert_same_features(before, build_features(perturbed, ids, PIT_CUTOFF, vocab, PIT_CONFIG))


def test_moving_an_event_from_before_to_after_the_cutoff_does_change_features() -> None:
    # Control for the test above: the comparison is sensitive to a real change.
    events = _random_events()
    ids = sorted(events["customer_id"].unique())
    vocab = Vocabulary.fit(events)
    before = build_features(events, ids, PIT_CUTOFF, vocab, PIT_CONFIG)
    last_visible = events.loc[events["occurred_at"] <= PIT_CUTOFF, "occurred_at"].idxmax()
    moved = events.copy()
    moved.loc[last_visible, "occurred_at"] = PIT_CUTOFF + pd.Timedelta(seconds=1)

    after = build_features(moved, ids, PIT_CUTOFF, vocab, PIT_CONFIG)

    assert not np.array_equal(before.tokens, after.tokens)
    assert not np.array_equal(before.static, after.static)


# --- snapshots and the training set ------------------------------------------------------------

TS_CONFIG = SequenceConfig(max_len=8, windows_days=(7, 30), lookback_days=60)


def test_snapshot_cutoffs() -> None:
    cutoffs = snapshot_cutoffs(AS_OF, horizon_days=30, n_snapshots=3, stride_days=30)

    expected = ["2024-04-02", "2024-05-02", "2024-06-01"]
    assert cutoffs == [pd.Timestamp(d) for d in expected]


def test_no_label_window_reaches_past_as_of() -> None:
    events = _random_events()
    training = build_training_set(events, AS_OF, TS_CONFIG, n_snapshots=4, stride_days=30)
    horizon = pd.Timedelta(days=TS_CONFIG.horizon_days)

    cutoffs = [*training.train_cutoffs, training.holdout.cutoff]
    assert all(c + horizon <= AS_OF for c in cutoffs)
    assert training.holdout.cutoff + horizon == AS_OF
    assert training.train.cutoff == max(training.train_cutoffs) < training.holdout.cutoff
    # Purchases by everyone right after as_of change nothing, labels included.
    late = pd.DataFrame(
        {
            "customer_id": events["customer_id"].unique(),
            "event_type": "purchase",
            "occurred_at": AS_OF + pd.Timedelta(microseconds=1),
            "amount": 10.0,
        }
    )
    with_late = build_training_set(pd.concat([events, late]), AS_OF, TS_CONFIG, 4, 30)
    for old, new in [(training.train, with_late.train), (training.holdout, with_late.holdout)]:
        _assert_same_features(old.features, new.features)
        np.testing.assert_array_equal(old.labels, new.labels)


def test_each_snapshot_equals_features_from_events_up_to_its_cutoff() -> None:
    events = _random_events()
    training = build_training_set(events, AS_OF, TS_CONFIG, n_snapshots=4, stride_days=30)

    parts, labels = [], []
    for cutoff in [*training.train_cutoffs, training.holdout.cutoff]:
        visible = events[events["occurred_at"] <= cutoff]
        ids = sorted(visible["customer_id"].unique())
        parts.append(build_features(visible, ids, cutoff, training.vocab, TS_CONFIG))
        labels.append(_labels_by_hand(events, ids, cutoff, TS_CONFIG))

    _assert_same_features(training.train.features, Features.concat(parts[:-1]))
    _assert_same_features(training.holdout.features, parts[-1])
    np.testing.assert_array_equal(training.train.labels, np.concatenate(labels[:-1]))
    np.testing.assert_array_equal(training.holdout.labels, labels[-1])
    assert 0 < training.train.labels.mean() < 1


def _vocab_events() -> pd.DataFrame:
    # Cutoffs for AS_OF, 3 snapshots, stride 30: Apr 2, May 2 (newest training), Jun 1 (holdout).
    nan = np.nan
    rows = [
        ("a", "view", "2024-03-01", nan),
        ("a", "purchase", "2024-04-10", 9.0),  # a training label
        ("a", "click", "2024-05-02", nan),  # exactly at the newest training cutoff
        ("late", "chat", "2024-05-20", nan),  # first seen in the holdout features
        ("late", "purchase", "2024-06-05", 4.0),
        ("a", "wishlist", "2024-06-10", nan),  # first seen in the holdout label window
        ("dormant", "view", "2023-12-01", nan),  # before every 60-day lookback
    ]
    return _events(rows)


def test_vocabulary_is_fit_on_events_up_to_the_newest_training_cutoff() -> None:
    config = SequenceConfig(max_len=4, windows_days=(7,), lookback_days=60)

    training = build_training_set(_vocab_events(), AS_OF, config, n_snapshots=3, stride_days=30)

    assert training.vocab.event_types == ("click", "purchase", "view")
    holdout = training.holdout
    assert holdout.features.customer_ids.tolist() == ["a", "dormant", "late"]
    np.testing.assert_array_equal(holdout.features.tokens[2], [UNKNOWN, PAD, PAD, PAD])
    np.testing.assert_array_equal(holdout.labels, [0, 0, 1])


def test_snapshot_customers_are_those_existing_at_the_cutoff() -> None:
    config = SequenceConfig(max_len=4, windows_days=(7,), lookback_days=60)

    training = build_training_set(_vocab_events(), AS_OF, config, n_snapshots=3, stride_days=30)

    # Apr 2 and May 2 snapshots: "late" does not exist yet; "dormant" exists, with no event in
    # the lookback (its sequence) but with its December view in the static features.
    assert training.train.features.customer_ids.tolist() == ["a", "dormant", "a", "dormant"]
    click, purchase, view = 3, 4, 5
    expected_tokens = [
        [view, PAD, PAD, PAD],
        [NO_HISTORY, PAD, PAD, PAD],
        [purchase, click, PAD, PAD],  # the Mar 1 view is outside the May 2 lookback
        [NO_HISTORY, PAD, PAD, PAD],
    ]
    np.testing.assert_array_equal(training.train.features.tokens, expected_tokens)
    np.testing.assert_array_equal(training.train.labels, [1, 0, 0, 0])
    dormant = _static_row(training.train.features, 3)
    assert dormant["frequency"] == pytest.approx(np.log1p(1))
    assert dormant["tenure"] == pytest.approx(np.log1p(153))  # Dec 1 to May 2


def test_a_training_set_uses_every_cutoff_when_each_has_customers() -> None:
    training = build_training_set(_random_events(), AS_OF, TS_CONFIG, n_snapshots=4, stride_days=30)

    cutoffs = snapshot_cutoffs(AS_OF, TS_CONFIG.horizon_days, n_snapshots=4, stride_days=30)
    assert training.train_cutoffs == tuple(cutoffs[:-1])
    assert training.holdout.cutoff == cutoffs[-1]
    assert training.skipped_cutoffs == ()


def test_cutoffs_before_the_first_event_are_skipped() -> None:
    # Events from Jan 1 on; 8 cutoffs 30 days apart from Jun 1 back reach Nov 4 and Dec 4, 2023.
    events = _random_events()

    training = build_training_set(events, AS_OF, TS_CONFIG, n_snapshots=8, stride_days=30)

    cutoffs = snapshot_cutoffs(AS_OF, TS_CONFIG.horizon_days, n_snapshots=8, stride_days=30)
    assert training.skipped_cutoffs == (pd.Timestamp("2023-11-04"), pd.Timestamp("2023-12-04"))
    assert training.skipped_cutoffs == tuple(cutoffs[:2])
    assert training.train_cutoffs == tuple(cutoffs[2:-1])
    # The same training set as asking for the usable cutoffs only.
    usable = build_training_set(events, AS_OF, TS_CONFIG, n_snapshots=6, stride_days=30)
    assert usable.skipped_cutoffs == ()
    assert usable.train_cutoffs == training.train_cutoffs
    assert usable.vocab == training.vocab
    _assert_same_features(training.train.features, usable.train.features)
    _assert_same_features(training.holdout.features, usable.holdout.features)
    np.testing.assert_array_equal(training.train.labels, usable.train.labels)
    np.testing.assert_array_equal(training.holdout.labels, usable.holdout.labels)


def test_fewer_than_two_usable_cutoffs_name_the_cutoffs_and_the_first_event() -> None:
    events = _random_events()
    as_of = pd.Timestamp("2024-02-15")  # cutoffs Oct 18, Nov 17, Dec 17, Jan 16

    with pytest.raises(ValueError) as raised:
        build_training_set(events, as_of, TS_CONFIG, n_snapshots=4, stride_days=30)

    message = str(raised.value)
    assert "1 of the snapshot cutoffs" in message
    for cutoff in snapshot_cutoffs(as_of, TS_CONFIG.horizon_days, 4, 30):
        assert str(cutoff) in message
    assert f"first event ({events['occurred_at'].min()})" in message


# --- bad input ---------------------------------------------------------------------------------


def _with(events: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    changed = events.copy()
    changed.loc[row, column] = value
    return changed


@pytest.mark.parametrize(
    ("events", "match"),
    [
        (_hand_events().drop(columns=["amount"]), r"missing columns \['amount'\]"),
        (_with(_hand_events(), "customer_id", 1, None), "null customer ids"),
        (_with(_hand_events(), "occurred_at", 1, pd.NaT), "null timestamps"),
        (_hand_events().assign(occurred_at="2024-01-01"), "must be datetime64"),
    ],
)
def test_malformed_events_are_rejected(events: pd.DataFrame, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_features(events, ["a"], CUTOFF, VOCAB, HAND_CONFIG)
    with pytest.raises(ValueError, match=match):
        build_training_set(events, AS_OF, TS_CONFIG)


def test_bad_requests_and_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        build_features(_hand_events(), ["a", "b", "a"], CUTOFF, VOCAB, HAND_CONFIG)
    with pytest.raises(ValueError, match="null"):
        build_features(_hand_events(), ["a", None], CUTOFF, VOCAB, HAND_CONFIG)
    with pytest.raises(ValueError, match="horizon_days"):
        SequenceConfig(horizon_days=0)
    with pytest.raises(ValueError, match="horizon_days"):
        snapshot_cutoffs(AS_OF, horizon_days=-1, n_snapshots=3, stride_days=30)


@pytest.mark.parametrize(
    ("events", "as_of", "kwargs", "match"),
    [
        (_random_events(), AS_OF, {"n_snapshots": 1}, "n_snapshots must be >= 2"),
        (_random_events(), AS_OF, {"stride_days": 20}, "reach into the holdout"),
        (_random_events(), pd.Timestamp("2023-06-01"), {}, "before the first event"),
        (_random_events().iloc[:0], AS_OF, {}, "before the first event"),
        # Only the holdout cutoff (Jan 16) is after the first event (Jan 1): one of two.
        (_random_events(), pd.Timestamp("2024-02-15"), {}, r"1 of the snapshot cutoffs"),
        # Even the holdout cutoff (Dec 21) is before the first event.
        (_random_events(), pd.Timestamp("2024-01-20"), {}, r"0 of the snapshot cutoffs"),
        (
            _random_events().replace({"event_type": {"purchase": "view"}}),
            AS_OF,
            {},
            "nothing to learn",
        ),
    ],
    ids=[
        "one_snapshot",
        "stride_shorter_than_horizon",
        "as_of_too_early",
        "no_events",
        "one_usable_cutoff",
        "no_usable_cutoff",
        "no_target",
    ],
)
def test_training_set_rejects_what_cannot_be_learned(events, as_of, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        build_training_set(events, as_of, TS_CONFIG, **kwargs)


def test_non_finite_inputs_name_the_inputs_and_the_customers_that_hold_them():
    """Two purchases a float can hold but whose sum it cannot: monetary is infinite; one
    purchase near the float limit stays finite."""
    rows = [
        ("big", "purchase", "2024-03-01", 1e308),
        ("big", "purchase", "2024-03-02", 1.5e308),
        ("edge", "purchase", "2024-03-03", 1.7e308),
        ("small", "purchase", "2024-03-04", 12.5),
    ]
    features = build_features(_events(rows), ["small", "big", "edge"], CUTOFF, VOCAB, HAND_CONFIG)
    inputs, customers = non_finite_inputs(features)
    assert inputs == ("monetary",)
    assert customers.tolist() == ["big"]
    inputs, customers = non_finite_inputs(features.take(np.array([0, 2])))
    assert (inputs, len(customers)) == ((), 0)

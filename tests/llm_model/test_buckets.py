"""Length-bucketed batches: for training every row once per epoch, for scoring every row
once in a fixed order and put back in the input's; each batch cut to its longest sequence
without dropping an event, and the network's scores and contributions unchanged by the cut."""

import itertools

import numpy as np
import pytest

from llm_model.buckets import (
    bucketed_dataset,
    in_input_order,
    length_batches,
    scoring_batches,
    sequence_lengths,
)
from llm_model.sequences import NO_HISTORY, PAD


def test_sequence_lengths_count_events_and_give_no_history_one_step():
    tokens = np.array(
        [
            [5, 4, PAD, PAD],
            [NO_HISTORY, PAD, PAD, PAD],
            [3, 3, 3, 3],
            [4, PAD, PAD, PAD],
        ]
    )
    np.testing.assert_array_equal(sequence_lengths(tokens), [2, 1, 4, 1])


def test_without_rng_batches_are_runs_of_the_rows_sorted_by_length():
    lengths = np.array([3, 1, 2, 1, 5, 2, 1])
    batches = length_batches(lengths, batch_size=3)
    # Stable sort by length: rows 1, 3, 6 (length 1), 2, 5 (2), 0 (3), 4 (5).
    assert [b.tolist() for b in batches] == [[1, 3, 6], [2, 5, 0], [4]]


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_with_rng_every_row_comes_once_in_batches_of_neighbouring_lengths(batch_size):
    lengths = np.random.default_rng(0).integers(1, 30, size=500)
    batches = length_batches(lengths, batch_size, np.random.default_rng(1))
    rows = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(rows), np.arange(500))
    assert all(len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1
    # Batches are cut from one sorted order: no two overlap in length beyond a shared edge.
    spans = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
    assert all(high <= next_low for (_, high), (next_low, _) in itertools.pairwise(spans))


def test_an_rng_reshuffles_the_batches_reproducibly():
    lengths = np.repeat([1, 2, 3], 40)
    first = [b.tolist() for b in length_batches(lengths, 8, np.random.default_rng(3))]
    again = [b.tolist() for b in length_batches(lengths, 8, np.random.default_rng(3))]
    other = [b.tolist() for b in length_batches(lengths, 8, np.random.default_rng(4))]
    assert first == again
    assert first != other


def batches_of(dataset) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    return [({k: v.numpy() for k, v in x.items()}, y.numpy()) for x, y in dataset]


def test_a_dataset_cuts_each_batch_to_its_longest_sequence_and_drops_no_event(training):
    features, labels = training.train.features, training.train.labels
    dataset = bucketed_dataset(features, labels, batch_size=32, seed=5)
    assert int(dataset.cardinality()) == -(-len(labels) // 32)
    epoch = batches_of(dataset)
    static_rows = np.concatenate([x["static"] for x, _ in epoch])
    assert len(static_rows) == len(labels)
    for inputs, _ in epoch:
        width = inputs["tokens"].shape[1]
        assert sequence_lengths(inputs["tokens"]).max() == width
        assert inputs["numeric"].shape[1] == width
    # Every event of every row survives the cut: events per batch add up to all events.
    events = sum(int((x["tokens"] != PAD).sum()) for x, _ in epoch)
    assert events == int((features.tokens != PAD).sum())
    assert sorted(np.concatenate([y for _, y in epoch])) == sorted(labels.astype(np.float32))


def test_each_pass_over_a_seeded_dataset_is_a_new_and_reproducible_epoch(training):
    features, labels = training.train.features, training.train.labels

    def first_statics(dataset):
        return [x["static"][0].tolist() for x, _ in batches_of(dataset)]

    dataset = bucketed_dataset(features, labels, batch_size=32, seed=5)
    epoch_1, epoch_2 = first_statics(dataset), first_statics(dataset)
    assert epoch_1 != epoch_2
    replay = bucketed_dataset(features, labels, batch_size=32, seed=5)
    assert [first_statics(replay), first_statics(replay)] == [epoch_1, epoch_2]


def test_the_network_scores_cut_batches_as_the_padded_rows(training, trained):
    features = training.holdout.features
    padded = trained.network.predict(
        {"tokens": features.tokens, "numeric": features.numeric, "static": features.static},
        verbose=0,
    )[:, 0]
    dataset = bucketed_dataset(features, training.holdout.labels, batch_size=16)
    rows = length_batches(sequence_lengths(features.tokens), batch_size=16)
    widths = []
    for (inputs, _), batch_rows in zip(dataset, rows, strict=True):
        widths.append(inputs["tokens"].shape[1])
        cut = trained.network(inputs, training=False).numpy()[:, 0]
        np.testing.assert_allclose(cut, padded[batch_rows], rtol=1e-5, atol=1e-7)
    assert min(widths) < features.tokens.shape[1]


# --- scoring ------------------------------------------------------------------------------

TOKENS = np.array(
    [
        [5, 4, 3, PAD],
        [NO_HISTORY, PAD, PAD, PAD],
        [3, 3, 3, 3],
        [4, 5, PAD, PAD],
        [4, PAD, PAD, PAD],
    ]
)


def test_scoring_batches_are_length_runs_cut_to_their_longest_sequence():
    batches = scoring_batches(TOKENS, batch_size=2)
    assert [(b.rows.tolist(), b.width) for b in batches] == [([1, 4], 1), ([3, 0], 3), ([2], 4)]
    # A network that takes one width only gets it for every batch.
    assert [b.width for b in scoring_batches(TOKENS, 2, fixed_width=4)] == [4, 4, 4]


def test_no_rows_make_one_empty_batch_and_empty_results():
    (batch,) = scoring_batches(TOKENS[:0], batch_size=2)
    assert batch.rows.shape == (0,)
    assert in_input_order([np.zeros((0, 3))], [batch]).shape == (0, 3)


def test_results_of_length_batches_come_back_in_the_input_order():
    batches = scoring_batches(TOKENS, batch_size=2)
    # Each row's result is its own position, computed in the batches' order.
    parts = [np.column_stack([b.rows, -b.rows]) for b in batches]
    np.testing.assert_array_equal(in_input_order(parts, batches)[:, 0], np.arange(len(TOKENS)))


def test_each_scoring_batch_scores_and_explains_as_its_padded_rows(training, trained):
    """Every cut batch against the same rows padded to max_len: probability, per-event and
    per-static contributions, and the gradient of the static inputs; the traced functions
    take every width with one trace."""
    features = training.holdout.features
    padded = trained.network.predict(
        {"tokens": features.tokens, "numeric": features.numeric, "static": features.static},
        verbose=0,
    )[:, 0]
    _, padded_events, padded_static, padded_gradient = (
        t.numpy() for t in trained.attribution(features.tokens, features.numeric, features.static)
    )
    batches = scoring_batches(features.tokens, batch_size=4)
    for batch in batches:
        tokens, numeric, static = batch.inputs(features)
        # Cut to the longest sequence: nothing but padding is left out.
        assert sequence_lengths(tokens).max() == batch.width == tokens.shape[1]
        assert (features.tokens[batch.rows, batch.width :] == PAD).all()
        rows = batch.rows
        p, per_event, per_static, gradient = (
            t.numpy() for t in trained.attribution(tokens, numeric, static)
        )
        close = {"rtol": 1e-5, "atol": 1e-7}
        np.testing.assert_allclose(
            trained.probability(tokens, numeric, static), padded[rows], **close
        )
        np.testing.assert_allclose(p, padded[rows], **close)
        np.testing.assert_allclose(per_event, padded_events[rows, : batch.width], **close)
        np.testing.assert_allclose(padded_events[rows, batch.width :], 0, atol=1e-7)
        np.testing.assert_allclose(per_static, padded_static[rows], **close)
        np.testing.assert_allclose(gradient, padded_gradient[rows], **close)
    # The holdout has few short sequences: small batches give them widths of their own.
    assert len({batch.width for batch in batches}) >= 4
    assert trained.probability.experimental_get_tracing_count() == 1
    assert trained.attribution.experimental_get_tracing_count() == 1

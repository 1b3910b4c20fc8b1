"""Batches of customers with sequences of about the same length, each cut to its longest
sequence: shuffled for training, in a fixed order for scoring and reason codes.

Sequences are padded on the right to ``max_len`` and the padding is masked, so cutting a
batch's trailing padding leaves every customer's output unchanged while the recurrent
layer runs only as many steps as the batch's longest sequence needs. On real purchase logs
most customers have a handful of events (on CDNOW half have one, nine in ten at most five,
of a ``max_len`` of 50): padded batches spent almost all of training on padding.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from llm_model.sequences import PAD, Features


def sequence_lengths(tokens: np.ndarray) -> np.ndarray:
    """Events per row of right-padded tokens; at least 1, since a customer without history
    has the NO_HISTORY token."""
    return np.maximum((tokens != PAD).sum(axis=1), 1)


def length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Row positions of each batch: rows sorted by length and cut into runs of
    ``batch_size``. With ``rng``, rows of the same length are drawn into the runs in random
    order and the runs come in random order, so every epoch mixes its batches anew."""
    ties = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    order = np.lexsort((ties, lengths))
    runs = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if rng is None:
        return runs
    return [runs[i] for i in rng.permutation(len(runs))]


def bucketed_dataset(
    features: Features, labels: np.ndarray, batch_size: int, seed: int | None = None
) -> tf.data.Dataset:
    """The rows as a dataset of length-bucketed batches for ``keras.Model.fit``; with a
    seed, batches are reshuffled on every pass (one pass is one epoch), deterministically."""
    rng = np.random.default_rng(seed) if seed is not None else None
    lengths = sequence_lengths(features.tokens)
    targets = labels.astype(np.float32)

    def generate():
        for rows in length_batches(lengths, batch_size, rng):
            width = lengths[rows].max()
            inputs = {
                "tokens": features.tokens[rows, :width],
                "numeric": features.numeric[rows, :width],
                "static": features.static[rows],
            }
            yield inputs, targets[rows]

    signature = (
        {
            "tokens": tf.TensorSpec([None, None], tf.int32),
            "numeric": tf.TensorSpec([None, None, features.numeric.shape[2]], tf.float32),
            "static": tf.TensorSpec([None, features.static.shape[1]], tf.float32),
        },
        tf.TensorSpec([None], tf.float32),
    )
    n_batches = -(-len(labels) // batch_size)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


@dataclass(frozen=True)
class ScoringBatch:
    """Row positions of one inference batch and the width its sequences are cut to."""

    rows: np.ndarray
    width: int

    def inputs(self, features: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """tokens, numeric and static of the batch's rows, the sequences cut to its width."""
        return (
            features.tokens[self.rows, : self.width],
            features.numeric[self.rows, : self.width],
            features.static[self.rows],
        )


def scoring_batches(
    tokens: np.ndarray, batch_size: int, fixed_width: int | None = None
) -> list[ScoringBatch]:
    """The rows sorted by length and cut into runs of ``batch_size``, each cut to its longest
    sequence, or kept at ``fixed_width`` for a network that takes no other. No rows still
    make one empty batch, so every output keeps its shape."""
    lengths = sequence_lengths(tokens)
    runs = length_batches(lengths, batch_size) or [np.zeros(0, dtype=np.int64)]
    return [ScoringBatch(rows, fixed_width or int(lengths[rows].max(initial=1))) for rows in runs]


def in_input_order(parts: list[np.ndarray], batches: list[ScoringBatch]) -> np.ndarray:
    """Per-row results of each batch (rows along the first axis) back in the input's order."""
    ordered = np.concatenate(parts)
    result = np.empty_like(ordered)
    result[np.concatenate([batch.rows for batch in batches])] = ordered
    return result

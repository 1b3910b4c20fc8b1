"""Reason codes: gradient x input on the embedded events, per-event numbers and static
features, in the same pass that computes the score (about the cost of one more predict).

An event's contribution is summed over every occurrence of its type, so a reason reads
"add_to_cart events"; a static feature's contribution is measured from its training mean.
How contributions become reasons is llm_model/reasons.py, shared with the static models.
"""

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from llm_model.buckets import in_input_order, scoring_batches
from llm_model.reasons import reasons_frame, static_labels, top_reasons
from llm_model.sequences import NO_HISTORY, PAD, UNKNOWN, Features, Vocabulary

# Large fixed batches: per-call overhead dominates small ones on CPU.
INFERENCE_BATCH = 4096


def token_names(vocab: Vocabulary) -> list[str]:
    special = {PAD: "padding", UNKNOWN: "unseen event types", NO_HISTORY: "no recent activity"}
    return [special.get(i, "") for i in range(len(special))] + [
        f"{event_type} events in the sequence" for event_type in vocab.event_types
    ]


def sequence_width(network: keras.Model, max_len: int) -> int | None:
    """The sequence width the network's batches must have: None (any) for networks trained
    on length buckets, ``max_len`` for those saved before, whose inputs fix it."""
    width = network.get_layer("tokens").batch_shape[1]
    if width not in (None, max_len):
        raise ValueError(f"the network takes sequences of {width} events, its manifest {max_len}")
    return width


def batch_signature(width: int | None, n_static: int) -> list[tf.TensorSpec]:
    """tokens, numeric and static of a batch of any size and, where ``width`` is None, any
    sequence width: a function traced with this signature is traced once, whatever the
    partition, batch and length bucket."""
    return [
        tf.TensorSpec([None, width], tf.int32),
        tf.TensorSpec([None, width, 3], tf.float32),
        tf.TensorSpec([None, n_static], tf.float32),
    ]


def traced_width(function: tf.types.experimental.PolymorphicFunction) -> int | None:
    """The sequence width a function traced with ``batch_signature`` takes."""
    return function.input_signature[0].shape[1]


def attribution_function(network: keras.Model, max_len: int, n_static: int):
    """Score and contributions of a batch in one traced pass. Tracing is costly, so a model
    keeps one (TrainedModel.attribution) for every partition it scores."""
    embed, head = network.get_layer("embed"), network.get_layer("head")
    static_mean = tf.constant(head.get_layer("scale").mean, dtype=tf.float32)

    @tf.function(input_signature=batch_signature(sequence_width(network, max_len), n_static))
    def attribute(tokens, numeric, static):
        embedded = embed(tokens)
        with tf.GradientTape() as tape:
            tape.watch([embedded, numeric, static])
            p = head([tokens, embedded, numeric, static], training=False)
            logit = tf.math.log(p) - tf.math.log1p(-p)
        d_embedded, d_numeric, d_static = tape.gradient(logit, [embedded, numeric, static])
        per_event = tf.reduce_sum(d_embedded * embedded, -1) + tf.reduce_sum(
            d_numeric * numeric, -1
        )
        return tf.reshape(p, [-1]), per_event, d_static * (static - tf.reshape(static_mean, [-1]))

    return attribute


def scores_with_reasons(
    attribute,
    features: Features,
    vocab: Vocabulary,
    static_names: tuple[str, ...],
    batch_size: int = INFERENCE_BATCH,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Raw scores and, per customer, the names of the three largest contributions;
    ``attribute`` is the model's ``attribution_function``. Batches are length buckets:
    padding contributes nothing, so cutting it leaves every contribution as it was."""
    names = np.array([*token_names(vocab), *static_labels(static_names)], dtype=object)
    batches = scoring_batches(features.tokens, batch_size, traced_width(attribute))
    scores, reasons = [], []
    for batch in batches:
        tokens, numeric, static = batch.inputs(features)
        p, per_event, per_static = attribute(tokens, numeric, static)
        by_token = sum_by_token(tokens, per_event.numpy(), vocab.size)
        # A type the customer never had contributes nothing: it is no reason, even where
        # every real contribution is negative.
        absent = sum_by_token(tokens, np.ones(tokens.shape), vocab.size) == 0
        by_token[absent] = -np.inf
        contributions = np.concatenate([by_token, per_static.numpy()], axis=1)
        contributions[:, PAD] = -np.inf
        reasons.append(top_reasons(contributions, names))
        scores.append(p.numpy().astype(np.float64))
    return in_input_order(scores, batches), reasons_frame(in_input_order(reasons, batches))


def sum_by_token(tokens: np.ndarray, per_event: np.ndarray, vocab_size: int) -> np.ndarray:
    rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
    flat = rows * vocab_size + tokens.reshape(-1)
    sums = np.bincount(flat, weights=per_event.reshape(-1), minlength=len(tokens) * vocab_size)
    # Without rows bincount gives integers, weights or not; the callers write -inf in.
    return sums.astype(np.float64, copy=False).reshape(len(tokens), vocab_size)

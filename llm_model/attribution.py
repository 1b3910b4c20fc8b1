"""Reason codes: gradient x input on the embedded events, per-event numbers and static
features, in the same pass that computes the score (about the cost of one more predict).

An event's contribution is summed over every occurrence of its type, so a reason reads
"5 add_to_cart among recent events"; a static feature's contribution is measured from its
training mean. How contributions become reasons is llm_model/reasons.py, shared with the
static models.
"""

from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from llm_model.buckets import in_input_order, scoring_batches
from llm_model.manifest import ModelManifest
from llm_model.reasons import (
    static_descriptions,
    static_figures,
    token_descriptions,
    top_reasons,
)
from llm_model.sequences import UNKNOWN, Features

# Large fixed batches: per-call overhead dominates small ones on CPU.
INFERENCE_BATCH = 4096


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
    """Score, contributions and the gradient of the log-odds with respect to the static
    inputs of a batch, in one traced pass. Tracing is costly, so a model keeps one
    (TrainedModel.attribution) for every partition it scores."""
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
        per_static = d_static * (static - tf.reshape(static_mean, [-1]))
        return tf.reshape(p, [-1]), per_event, per_static, d_static

    return attribute


@dataclass(frozen=True, eq=False)
class Attribution:
    """Per customer, in the input's order: the raw score; per token id, its contribution
    summed over the sequence (NaN where the sequence lacks it) and its count there; per
    static input, its contribution (gradient x (input - training mean)) and the gradient."""

    scores: np.ndarray
    by_token: np.ndarray
    token_counts: np.ndarray
    static: np.ndarray
    static_gradient: np.ndarray


def attribute_in_batches(
    attribute, features: Features, vocab_size: int, batch_size: int = INFERENCE_BATCH
) -> Attribution:
    """``attribute`` (the model's ``attribution_function``) over length buckets: padding
    contributes nothing, so cutting it leaves every contribution as it was."""
    batches = scoring_batches(features.tokens, batch_size, traced_width(attribute))
    parts = []
    for batch in batches:
        tokens, numeric, static = batch.inputs(features)
        p, per_event, per_static, d_static = attribute(tokens, numeric, static)
        counts = sum_by_token(tokens, np.ones(tokens.shape), vocab_size)
        by_token = sum_by_token(tokens, per_event.numpy(), vocab_size)
        # A type the customer never had contributes nothing: it is no reason.
        by_token[counts == 0] = np.nan
        parts.append(
            (p.numpy().astype(np.float64), by_token, counts, per_static.numpy(), d_static.numpy())
        )
    # Field by field, each batch's rows put back in the input's order.
    fields = zip(*parts, strict=True)
    return Attribution(*(in_input_order(list(field), batches) for field in fields))


def network_reasons(
    attribution: Attribution,
    static_contributions: np.ndarray,
    static: np.ndarray,
    manifest: ModelManifest,
) -> pd.DataFrame:
    """The reasons of a network's scores: the tokens of its sequence from UNKNOWN on (padding
    is never a reason) and its static features, whose ``static_contributions`` are given."""
    contributions = np.concatenate([attribution.by_token[:, UNKNOWN:], static_contributions], 1)
    figures = np.concatenate([attribution.token_counts[:, UNKNOWN:], static_figures(static)], 1)
    descriptions = [
        *token_descriptions(manifest.vocabulary, manifest.sequence),
        *static_descriptions(manifest.static_names, manifest.sequence),
    ]
    return top_reasons(contributions, figures, descriptions)


def sum_by_token(tokens: np.ndarray, per_event: np.ndarray, vocab_size: int) -> np.ndarray:
    rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
    flat = rows * vocab_size + tokens.reshape(-1)
    sums = np.bincount(flat, weights=per_event.reshape(-1), minlength=len(tokens) * vocab_size)
    # Without rows bincount gives integers, weights or not; the callers write NaN in.
    return sums.astype(np.float64, copy=False).reshape(len(tokens), vocab_size)

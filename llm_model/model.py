"""The long-term-memory model: event embedding + per-event numbers -> GRU/LSTM, joined
with static RFM features -> dense -> sigmoid. Built with the Keras functional API."""

import itertools
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

from llm_model.attribution import (
    INFERENCE_BATCH,
    Attribution,
    attribute_in_batches,
    attribution_function,
    batch_signature,
    network_reasons,
    sequence_width,
    traced_width,
)
from llm_model.buckets import in_input_order, scoring_batches
from llm_model.manifest import ModelConfig, ModelManifest
from llm_model.sequences import PAD, Features
from llm_model.servable import ServableModel

N_EVENT_NUMBERS = 3


def use_inter_op_threads() -> None:
    """Run the model's small ops side by side (inter-op) instead of splitting each over the
    cores (intra-op), which cost more than it gained. Only possible before TensorFlow runs
    its first op; an explicit TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS wins."""
    try:
        if "TF_NUM_INTRAOP_THREADS" not in os.environ:
            tf.config.threading.set_intra_op_parallelism_threads(1)
        if "TF_NUM_INTEROP_THREADS" not in os.environ:
            tf.config.threading.set_inter_op_parallelism_threads(usable_cores())
    except RuntimeError:
        pass  # TensorFlow has started: its thread pools are fixed for this process


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def quiet_dropped_mask_warning() -> None:
    """The head rebuilds the padding mask from the tokens, so the embedding's mask is not
    needed past it; Keras would warn about dropping it on every call."""
    warnings.filterwarnings("ignore", message="Layer 'head' .* mask", category=UserWarning)


def layer_seeds(seed: int) -> Iterator[int]:
    """One seed per random draw of the network. Unseeded Keras layers take theirs from
    Python's global `random`, which background threads (Prefect's among them) draw from too,
    so the same data and seed would not give the same model in a busy process."""
    return itertools.count(seed * 1_000)


def glorot(seeds: Iterator[int]) -> keras.initializers.Initializer:
    return keras.initializers.GlorotUniform(seed=next(seeds))


def recurrent_layer(
    config: ModelConfig, return_sequences: bool, name: str, seeds: Iterator[int]
) -> layers.Layer:
    cell = {"gru": layers.GRU, "lstm": layers.LSTM}[config.cell]
    return cell(
        config.units,
        return_sequences=return_sequences,
        dropout=config.dropout,
        kernel_regularizer=keras.regularizers.l2(config.l2),
        kernel_initializer=glorot(seeds),
        recurrent_initializer=keras.initializers.Orthogonal(seed=next(seeds)),
        seed=next(seeds),
        name=name,
    )


def build_model(
    config: ModelConfig,
    vocab_size: int,
    static_mean: np.ndarray,
    static_variance: np.ndarray,
    base_rate: float,
    mean_spend: float | None = None,
) -> keras.Model:
    """Embedding -> head. The head is a model of its own so attribution can take gradients
    with respect to the embedded events (token ids themselves have no gradient). Sequences
    may have any length: training and scoring cut each batch's padding (llm_model.buckets).
    Given the mean spend of the customers who spent, the head ends in the three outputs of
    a zero-inflated lognormal instead (llm_model.ziln), trained on spend."""
    quiet_dropped_mask_warning()
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    numbers = keras.Input((None, N_EVENT_NUMBERS), name="numeric")
    static = keras.Input((len(static_mean),), name="static")
    seeds = layer_seeds(config.seed)
    embedded = layers.Embedding(
        vocab_size,
        config.embedding_dim,
        embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=next(seeds)),
        mask_zero=True,
        name="embed",
    )(tokens)
    head = build_head(config, static_mean, static_variance, base_rate, seeds, mean_spend)
    output = head([tokens, embedded, numbers, static])
    task = "propensity" if mean_spend is None else "ziln"
    model = keras.Model([tokens, numbers, static], output, name=f"{task}_{config.cell}")
    optimizer = keras.optimizers.Adam(config.learning_rate)
    if mean_spend is None:
        model.compile(optimizer, "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    else:
        from llm_model.ziln import ziln_loss

        model.compile(optimizer, ziln_loss)
    return model


def build_head(
    config: ModelConfig,
    static_mean: np.ndarray,
    static_variance: np.ndarray,
    base_rate: float,
    seeds: Iterator[int],
    mean_spend: float | None = None,
) -> keras.Model:
    """Static scaling is fixed from training statistics, so it travels inside the .keras file."""
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    embedded = keras.Input((None, config.embedding_dim), name="embedded")
    numbers = keras.Input((None, N_EVENT_NUMBERS), name="numeric")
    static = keras.Input((len(static_mean),), name="static")

    mask = keras.ops.not_equal(tokens, PAD)
    sequence = layers.Concatenate(name="event_inputs")([embedded, numbers])
    for depth in range(config.recurrent_layers - 1):
        sequence = recurrent_layer(config, True, f"{config.cell}_{depth}", seeds)(
            sequence, mask=mask
        )
    memory = recurrent_layer(config, False, f"{config.cell}_last", seeds)(sequence, mask=mask)

    scaled = layers.Normalization(mean=static_mean, variance=static_variance, name="scale")(static)
    joined = layers.Concatenate(name="joined")([memory, scaled])
    hidden = layers.Dense(
        config.dense_units,
        activation="relu",
        kernel_regularizer=keras.regularizers.l2(config.l2),
        kernel_initializer=glorot(seeds),
        name="dense",
    )(joined)
    hidden = layers.Dropout(config.dropout, seed=next(seeds), name="dropout")(hidden)
    # Starting at the base rate's log-odds spares the first epochs learning the imbalance.
    rate = float(np.clip(base_rate, 1e-4, 1 - 1e-4))
    base_log_odds = np.log(rate / (1 - rate))
    if mean_spend is None:
        output = layers.Dense(
            1,
            activation="sigmoid",
            kernel_initializer=glorot(seeds),
            bias_initializer=keras.initializers.Constant(base_log_odds),
            name="propensity",
        )(hidden)
    else:
        # The buyer's log-odds, the log of a typical spend and a unit spread to start from.
        start = [base_log_odds, np.log(max(mean_spend, 1e-6)), np.log(np.expm1(1.0))]
        output = layers.Dense(
            3,
            kernel_initializer=glorot(seeds),
            bias_initializer=keras.initializers.Constant(start),
            name="ziln",
        )(hidden)
    return keras.Model([tokens, embedded, numbers, static], output, name="head")


def probability_function(network: keras.Model, max_len: int, n_static: int):
    """The network's probabilities of a batch, traced once: Keras' predict builds a data
    pipeline on every call and retraces for new batch shapes."""

    @tf.function(input_signature=batch_signature(sequence_width(network, max_len), n_static))
    def probability(tokens, numeric, static):
        p = network({"tokens": tokens, "numeric": numeric, "static": static}, training=False)
        return tf.reshape(p, [-1])

    return probability


def predict(probability, features: Features, batch_size: int = INFERENCE_BATCH) -> np.ndarray:
    """Raw probabilities in large fixed batches of about equal lengths, each cut to its
    longest sequence (most customers have a few events of max_len); ``probability`` is a
    ``probability_function``."""
    batches = scoring_batches(features.tokens, batch_size, traced_width(probability))
    scores = [probability(*batch.inputs(features)).numpy() for batch in batches]
    return in_input_order(scores, batches).astype(np.float64)


def model_to_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(artifact: bytes) -> keras.Model:
    use_inter_op_threads()
    quiet_dropped_mask_warning()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(artifact)
        return keras.saving.load_model(path, compile=False)


def for_scoring(network: keras.Model) -> keras.Model:
    """The network with its GRU cells projecting each gate on its own (Keras' implementation
    1) instead of slicing one joint projection at every step (2, the default). Same numbers;
    the gradients of those slices were a large share of reason codes' time. Training keeps
    the default, which fits as fast or faster."""
    for layer in network.get_layer("head").layers:
        if isinstance(layer, layers.GRU):
            layer.cell.implementation = 1
    return network


@dataclass(frozen=True)
class TrainedModel(ServableModel):
    """A fitted recurrent network (kind gru or lstm) with its manifest."""

    network: keras.Model
    manifest: ModelManifest

    @cached_property
    def probability(self):
        return probability_function(
            self.network, self.manifest.sequence.max_len, len(self.manifest.static_names)
        )

    def raw_scores(self, features: Features) -> np.ndarray:
        return predict(self.probability, features)

    @cached_property
    def attribution(self):
        return attribution_function(
            self.network, self.manifest.sequence.max_len, len(self.manifest.static_names)
        )

    def attribute(self, features: Features) -> Attribution:
        """Scores and gradient x input, in one pass."""
        return attribute_in_batches(self.attribution, features, self.manifest.vocabulary.size)

    def raw_scores_with_reasons(self, features: Features) -> tuple[np.ndarray, pd.DataFrame]:
        attribution = self.attribute(features)
        reasons = network_reasons(attribution, attribution.static, features.static, self.manifest)
        return attribution.scores, reasons

    def to_bytes(self) -> bytes:
        return model_to_bytes(self.network)

    @classmethod
    def from_artifact(cls, artifact: bytes, manifest: ModelManifest) -> "TrainedModel":
        return cls(network=for_scoring(model_from_bytes(artifact)), manifest=manifest)

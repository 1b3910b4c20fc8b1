"""The recurrent network with a value head: a zero-inflated lognormal (ZILN) on the same
sequence encoder as the propensity network, after Wang, Liu and Miao, "A Deep Probabilistic
Model for Customer Lifetime Value Prediction" (google/lifetime_value).

Its three outputs are the log-odds that a customer spends at all, and the location and the
(pre-softplus) scale of the lognormal their spend follows if they do. The expected spend is
P(spend) * exp(location + scale^2 / 2)."""

from dataclasses import dataclass
from functools import cached_property

import keras
import numpy as np
import tensorflow as tf

from llm_model.attribution import batch_signature, sequence_width
from llm_model.model import model_to_bytes, predict
from llm_model.sequences import Features
from llm_model.value import ZILN

HALF_LOG_TWO_PI = 0.5 * np.log(2 * np.pi)
# Keeps the scale away from 0, where the lognormal's density is not finite.
MIN_SCALE = 1e-3


def spend_parts(logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The log-odds of spending, and the lognormal's location and scale, per row."""
    scale = keras.ops.maximum(keras.ops.softplus(logits[..., 2]), MIN_SCALE)
    return logits[..., 0], logits[..., 1], scale


def ziln_loss(spend: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per row: the binary cross-entropy of spending at all, plus, for a row that spent,
    the negative log-density of its spend under the lognormal."""
    spend = keras.ops.reshape(keras.ops.cast(spend, "float32"), (-1,))
    log_odds, location, scale = spend_parts(logits)
    spent = keras.ops.cast(spend > 0, "float32")
    classification = keras.ops.binary_crossentropy(spent, log_odds, from_logits=True)
    log_spend = keras.ops.log(keras.ops.where(spend > 0, spend, 1.0))
    log_density = (
        -log_spend
        - keras.ops.log(scale)
        - HALF_LOG_TWO_PI
        - keras.ops.square(log_spend - location) / (2 * keras.ops.square(scale))
    )
    return classification - spent * log_density


def spend_outlook(logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per row: the probability of spending at all, and the expected spend."""
    log_odds, location, scale = spend_parts(logits)
    probability = keras.ops.sigmoid(log_odds)
    return probability, probability * keras.ops.exp(location + keras.ops.square(scale) / 2)


@dataclass(frozen=True)
class ZilnValueModel:
    """A fitted ZILN network; its expected value needs no propensity."""

    network: keras.Model
    max_len: int
    kind: str = ZILN

    @cached_property
    def spend_function(self):
        """Per row: the probability of spending at all and the expected spend."""
        n_static = self.network.get_layer("static").batch_shape[1]
        width = sequence_width(self.network, self.max_len)

        @tf.function(input_signature=batch_signature(width, n_static))
        def spend(tokens, numeric, static):
            logits = self.network(
                {"tokens": tokens, "numeric": numeric, "static": static}, training=False
            )
            return tf.stack(spend_outlook(logits), axis=1)

        return spend

    def spend_probability(self, features: Features) -> np.ndarray:
        """P(spend > 0 in the horizon): what the network's purchase head would publish as a
        propensity (the benchmarks judge it against the propensity contenders)."""
        return predict(self.spend_function, features)[:, 0]

    def expected_value(self, features: Features, propensity: np.ndarray) -> np.ndarray:
        return np.maximum(predict(self.spend_function, features)[:, 1], 0.0)

    def to_bytes(self) -> bytes:
        return model_to_bytes(self.network)

"""The recurrent model: the .keras round trip, padding, scores in length buckets, networks
saved before length buckets, and scores with reasons."""

import json
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from llm_model.attribution import sequence_width, traced_width
from llm_model.manifest import ModelManifest
from llm_model.model import TrainedModel, model_to_bytes, predict
from llm_model.reasons import REASON_COLUMNS, WEIGHT_COLUMNS


def test_keras_artifact_round_trip_predicts_the_same(training, trained):
    manifest = ModelManifest.from_json(json.loads(json.dumps(trained.manifest.to_json())))
    assert manifest == trained.manifest
    loaded = TrainedModel.from_artifact(model_to_bytes(trained.network), manifest)
    features = training.holdout.features
    # The loaded GRU computes its gates another way (see the next test): float32 rounding
    # may differ in the last bits, as seen once in 111 scores (1.5e-7 relative).
    np.testing.assert_allclose(
        loaded.propensity(features), trained.propensity(features), rtol=1e-6, atol=0
    )
    assert loaded.manifest == trained.manifest


def test_a_loaded_model_scores_and_explains_as_the_trained_one(
    training, trained, same_scores_and_reasons
):
    """Loading switches the GRU to per-gate projections for speed; the numbers must not move."""
    loaded = TrainedModel.from_artifact(model_to_bytes(trained.network), trained.manifest)
    gru_cells = [m.network.get_layer("head").get_layer("gru_last").cell for m in (loaded, trained)]
    assert [cell.implementation for cell in gru_cells] == [1, 2]
    same_scores_and_reasons(loaded, trained, training.holdout.features)


def test_padding_positions_do_not_change_the_score(training, trained):
    features = training.holdout.features
    noisy = features.take(np.arange(len(features)))
    noisy.numeric[noisy.tokens == 0] = 99.0
    np.testing.assert_allclose(trained.raw_scores(noisy), trained.raw_scores(features), rtol=1e-6)


def test_scores_in_length_buckets_come_back_in_the_input_order(training, trained):
    """Many batches of different widths give each customer the score of their padded row."""
    features = training.holdout.features
    padded = trained.network.predict(
        {"tokens": features.tokens, "numeric": features.numeric, "static": features.static},
        verbose=0,
    )[:, 0]
    assert traced_width(trained.probability) is None
    for batch_size in (4, len(features)):
        scores = predict(trained.probability, features, batch_size)
        np.testing.assert_allclose(scores, padded, rtol=1e-5, atol=1e-7)


def test_no_customers_get_no_raw_scores_and_no_reasons(training, trained):
    nobody = training.holdout.features.take(np.arange(0))
    assert trained.raw_scores(nobody).shape == (0,)
    scores, reasons = trained.raw_scores_with_reasons(nobody)
    assert scores.shape == (0,)
    assert list(reasons.columns) == [*REASON_COLUMNS, *WEIGHT_COLUMNS]
    assert reasons.empty


def with_fixed_width(config: Any, width: int) -> Any:
    """A network's Keras config with every sequence input (time axis None) fixed at `width`
    events, as build_model made them before training used length buckets."""
    if isinstance(config, list):
        return [with_fixed_width(item, width) for item in config]
    if not isinstance(config, dict):
        return config
    fixed = {key: with_fixed_width(value, width) for key, value in config.items()}
    if config.get("class_name") == "InputLayer":
        first, time, *rest = config["config"]["batch_shape"]
        shape = [first, width if time is None else time, *rest]
        fixed["config"] = {**config["config"], "batch_shape": shape}
    return fixed


@pytest.fixture(scope="module")
def fixed_width_network(trained) -> keras.Model:
    """The trained network rebuilt as networks were saved before length buckets: its
    sequence inputs take max_len events and no other number."""
    max_len = trained.manifest.sequence.max_len
    network = keras.Model.from_config(with_fixed_width(trained.network.get_config(), max_len))
    network.set_weights(trained.network.get_weights())
    return network


def test_a_network_saved_before_length_buckets_scores_at_full_width(
    training, trained, fixed_width_network, same_scores_and_reasons
):
    max_len = trained.manifest.sequence.max_len
    assert sequence_width(fixed_width_network, max_len) == max_len
    old = TrainedModel.from_artifact(model_to_bytes(fixed_width_network), trained.manifest)
    assert traced_width(old.probability) == traced_width(old.attribution) == max_len
    same_scores_and_reasons(old, trained, training.holdout.features)


def test_a_network_fixed_at_another_width_than_its_manifest_is_refused(
    trained, fixed_width_network
):
    other = trained.manifest.sequence.max_len + 1
    with pytest.raises(ValueError, match=rf"takes sequences of {other - 1} events.* {other}$"):
        sequence_width(fixed_width_network, other)


def test_scores_with_reasons_match_plain_scores(training, trained):
    features = training.holdout.features
    with_reasons = trained.scores(features, with_reasons=True)
    plain = trained.scores(features, with_reasons=False)
    np.testing.assert_allclose(with_reasons["propensity"], plain["propensity"], rtol=1e-5)
    assert list(with_reasons.columns) == [
        "customer_id",
        "propensity",
        *REASON_COLUMNS,
        *WEIGHT_COLUMNS,
    ]
    # A customer gets a first reason exactly when something moved their score (a saturated
    # score's gradient is 0 everywhere: no reason, rather than an arbitrary one).
    attribution = trained.attribute(features)
    moved = (np.nan_to_num(attribution.by_token) != 0).any(axis=1) | (attribution.static != 0).any(
        axis=1
    )
    assert moved.mean() > 0.5
    np.testing.assert_array_equal(with_reasons["reason_1"].notna(), moved)
    assert not with_reasons["reason_1"].str.contains("padding").any()
    # The model's one traced function serves any batch size: a partition of 7 customers
    # gets the same scores and reasons as those customers had in the larger one.
    part = trained.scores(features.take(np.arange(7)), with_reasons=True)
    pd.testing.assert_frame_equal(part, with_reasons.iloc[:7], rtol=1e-6)

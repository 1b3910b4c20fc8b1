"""The zero-inflated lognormal value head: its loss and expected spend against a
hand-computed case, and the network trained, served and stored in a model's artifact."""

import dataclasses

import numpy as np
import pytest
from scipy.stats import lognorm

from llm_model.kinds import load_servable
from llm_model.training import fit_ziln
from llm_model.value import ValuedModel, global_drivers
from llm_model.ziln import spend_outlook, ziln_loss


def softplus(x: float) -> float:
    return float(np.log1p(np.exp(x)))


def test_loss_and_expected_spend_by_hand():
    logits = np.array([[0.4, 1.5, -0.3], [-1.2, 0.2, 0.8]], dtype=np.float32)
    spend = np.array([12.0, 0.0], dtype=np.float32)
    p_spend = 1 / (1 + np.exp(-0.4))
    scale = softplus(-0.3)
    # The buyer: -log P(spend) minus the lognormal's log-density of 12 (scipy's lognorm
    # with s = scale and scale = exp(location)); the other: -log P(no spend).
    buyer = -np.log(p_spend) - lognorm.logpdf(12.0, s=scale, scale=np.exp(1.5))
    other = -np.log(1 - 1 / (1 + np.exp(1.2)))
    np.testing.assert_allclose(np.asarray(ziln_loss(spend, logits)), [buyer, other], rtol=1e-5)
    # E[spend] = P(spend) * exp(location + scale^2 / 2), the lognormal's mean.
    mean = lognorm.mean(s=scale, scale=np.exp(1.5))
    probability, expected = (np.asarray(part)[0] for part in spend_outlook(logits))
    np.testing.assert_allclose(probability, p_spend, rtol=1e-5)
    np.testing.assert_allclose(expected, p_spend * mean, rtol=1e-5)


@pytest.fixture(scope="module")
def ziln(training, tiny_config, sequence_config):
    return fit_ziln(training, tiny_config, sequence_config.max_len, verbose=0)


def test_the_ziln_network_trains_and_predicts_spend(ziln, training):
    features = training.holdout.features
    expected = ziln.expected_value(features, np.zeros(len(features)))
    assert expected.shape == (len(features),)
    assert np.isfinite(expected).all() and (expected >= 0).all()
    # One tiny epoch teaches it the scale of spend, not yet who spends (the benchmarks judge
    # that): its mean is within a factor of ten of the holdout's, and it tells customers apart.
    assert 0.1 < expected.mean() / training.holdout.values.mean() < 10
    assert expected.std() > 0
    drivers = global_drivers(ziln, features, np.zeros(len(features)))
    assert len(drivers) == 5 and all(moved >= 0 for moved in drivers.values())


def test_the_spend_probability_and_expected_value_are_the_networks_own(ziln, training):
    # Against the network called on the whole padded features in one go: the length
    # buckets, the traced function and the column each answer comes from.
    features = training.holdout.features
    logits = np.asarray(
        ziln.network(
            {"tokens": features.tokens, "numeric": features.numeric, "static": features.static},
            training=False,
        )
    )
    np.testing.assert_allclose(
        ziln.spend_probability(features), 1 / (1 + np.exp(-logits[:, 0])), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        ziln.expected_value(features, np.zeros(len(features))),
        np.asarray(spend_outlook(logits)[1]),
        rtol=1e-4,
        atol=1e-6,
    )


def test_a_ziln_value_model_round_trips_with_its_propensity_model(ziln, static_models, training):
    model = ValuedModel.of(static_models["logistic"], ziln)
    loaded = load_servable(model.to_bytes(), model.manifest)
    features = training.holdout.features
    np.testing.assert_allclose(
        loaded.scores(features, False)["expected_value"],
        model.scores(features, False)["expected_value"],
        rtol=1e-5,
    )


def test_too_few_spenders_train_no_ziln(training, tiny_config, sequence_config):

    no_spend = dataclasses.replace(
        training,
        train=dataclasses.replace(training.train, values=np.zeros(len(training.train.labels))),
    )
    with pytest.raises(ValueError, match="0 training rows with spend"):
        fit_ziln(no_spend, tiny_config, sequence_config.max_len, verbose=0)

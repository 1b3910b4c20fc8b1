"""Tiny shared fixtures for the llm_model tests: a small synthetic event log, its training set,
one tiny recurrent model, the static contenders and the recurrent model on top of the gbm
trained on it once per session (several test files score, store or retrain them)."""

import numpy as np
import pandas as pd
import pytest

from llm_model.attribution import token_names
from llm_model.baselines import StaticModel, fit_static_model
from llm_model.hybrid import HybridModel
from llm_model.manifest import ModelConfig
from llm_model.model import TrainedModel
from llm_model.reasons import static_label
from llm_model.sequences import (
    PAD,
    Features,
    SequenceConfig,
    Snapshot,
    TrainingSet,
    build_training_set,
)
from llm_model.training import calibration_split, fit_hybrid, fit_model
from service.synthetic import generate


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    """A model small and short enough to train in a second or two."""
    return ModelConfig(units=4, embedding_dim=4, dense_units=4, epochs=1, batch_size=128)


@pytest.fixture(scope="session")
def sequence_config() -> SequenceConfig:
    return SequenceConfig(max_len=12)


@pytest.fixture(scope="session")
def events() -> pd.DataFrame:
    """A year of events of 300 synthetic customers."""
    return generate(300, seed=11).events


@pytest.fixture(scope="session")
def split_training(events, sequence_config) -> tuple[TrainingSet, Snapshot]:
    """Two training snapshots and the reported half of the temporal holdout, ending at the
    last event, and the half the calibrators are chosen on."""
    return calibration_split(
        build_training_set(events, events["occurred_at"].max(), sequence_config, n_snapshots=3)
    )


@pytest.fixture(scope="session")
def training(split_training) -> TrainingSet:
    return split_training[0]


@pytest.fixture(scope="session")
def judge(split_training) -> Snapshot:
    return split_training[1]


@pytest.fixture(scope="session")
def trained(training, judge, tiny_config, sequence_config) -> TrainedModel:
    model, _ = fit_model(training, judge, tiny_config, sequence_config, verbose=0)
    return model


@pytest.fixture(scope="session")
def static_models(training, tiny_config, sequence_config) -> dict[str, StaticModel]:
    """The static contenders by kind, fitted on the same snapshots as `trained`."""
    return {
        kind: fit_static_model(kind, training, sequence_config, tiny_config.seed)
        for kind in ("logistic", "gbm")
    }


@pytest.fixture(scope="session")
def hybrid(training, judge, static_models, tiny_config, sequence_config) -> HybridModel:
    """The tiny recurrent model on top of the gbm of `static_models`."""
    model, _ = fit_hybrid(
        training, judge, static_models["gbm"], tiny_config, sequence_config, verbose=0
    )
    return model


def assert_reasons_are_the_largest(
    reasons: pd.DataFrame, contributions: np.ndarray, labels: list[str]
) -> None:
    """reason_1..3 name the three largest contributions of each row, largest first (ties
    either way); `labels` names the contributions' columns."""
    assert len(set(labels)) == len(labels)
    rows = np.arange(len(contributions))
    largest = -np.sort(-contributions, axis=1)
    for rank in range(3):
        named = reasons[f"reason_{rank + 1}"].map(labels.index).to_numpy()
        np.testing.assert_allclose(
            contributions[rows, named], largest[:, rank], atol=1e-6, err_msg=f"reason_{rank + 1}"
        )


@pytest.fixture(scope="session")
def reasons_are_the_largest():
    """The check above, for the tests of every kind's reason codes."""
    return assert_reasons_are_the_largest


def full_width_contributions_of(
    model: TrainedModel, features: Features
) -> tuple[np.ndarray, list[str]]:
    """Every contribution per customer (event types summed over their occurrences, then the
    static features) and its label, from one pass over the padded rows at full width, summed
    here without the library's bincount."""
    vocab = model.manifest.vocabulary
    _, per_event, per_static = model.attribution(features.tokens, features.numeric, features.static)
    by_token = np.zeros((len(features), vocab.size))
    rows = np.repeat(np.arange(len(features)), features.tokens.shape[1])
    np.add.at(by_token, (rows, features.tokens.ravel()), per_event.numpy().ravel())
    by_token[:, PAD] = -np.inf  # padding is no reason
    names = [*token_names(vocab), *(static_label(n) for n in features.static_names)]
    return np.concatenate([by_token, per_static.numpy()], axis=1), names


@pytest.fixture(scope="session")
def full_width_contributions():
    """The reference above, for the recurrent model's and the hybrid's reason tests."""
    return full_width_contributions_of


def assert_same_scores_and_reasons(ours, theirs, features) -> None:
    """Two models (one rebuilt from the other's bytes) give the same propensities and the
    same reasons to the same customers."""
    first, second = (m.scores(features, with_reasons=True) for m in (ours, theirs))
    np.testing.assert_allclose(first["propensity"], second["propensity"], rtol=1e-6)
    pd.testing.assert_frame_equal(
        first.drop(columns="propensity"), second.drop(columns="propensity")
    )


@pytest.fixture(scope="session")
def same_scores_and_reasons():
    """The check above, for the tests of every kind stored and loaded again."""
    return assert_same_scores_and_reasons

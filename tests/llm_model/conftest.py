"""Tiny shared fixtures for the llm_model tests: a small synthetic event log, its training set
and one tiny model trained on it once per session (several test files score or retrain it)."""

import pandas as pd
import pytest

from llm_model.manifest import ModelConfig
from llm_model.model import TrainedModel
from llm_model.sequences import SequenceConfig, TrainingSet, build_training_set
from llm_model.synthetic import generate
from llm_model.training import fit_model


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
def training(events, sequence_config) -> TrainingSet:
    """Two training snapshots and the temporal holdout, ending at the last event."""
    return build_training_set(events, events["occurred_at"].max(), sequence_config, n_snapshots=3)


@pytest.fixture(scope="session")
def trained(training, tiny_config, sequence_config) -> TrainedModel:
    model, _ = fit_model(training, tiny_config, sequence_config, verbose=0)
    return model

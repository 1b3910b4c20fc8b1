"""A retrain's training set, read a chunk of customers at a time from a sample chosen in the
database: what one frame of the same customers' events gives, on every database."""

import hashlib
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from db.readers import read_events
from llm_model.calibration import Calibrator
from llm_model.inputs import TrainingInputs, load_inputs, save_inputs, training_inputs
from llm_model.manifest import ModelManifest
from llm_model.sequences import Features, SequenceConfig, Vocabulary
from service.demo_data import load_synthetic_events
from service.retraining import RetrainJob, read_training_inputs, training_window

LOG = logging.getLogger("propensity")
# A champion that reads the events its own way: another vocabulary, a shorter sequence.
CHAMPION = ModelManifest(
    "logistic",
    SequenceConfig(max_len=7, horizon_days=30, lookback_days=60),
    Vocabulary(("add_to_cart", "purchase")),
    Calibrator("identity"),
    ("frequency",),
    3,
    30,
)


@pytest.fixture
def customers(engine) -> int:
    load_synthetic_events(engine, n_customers=300, seed=5)
    return 300


@pytest.fixture
def job_for(tiny, database_url) -> Callable[[int], RetrainJob]:
    """job_for(sample_size): the tiny model's retrain job on the test's database."""

    def job(sample_size: int) -> RetrainJob:
        return RetrainJob.from_settings(
            tiny(database_url=database_url, training_sample_size=sample_size)
        )

    return job


def every_event(engine, job: RetrainJob, as_of) -> pd.DataFrame:
    window = training_window(job, as_of, LOG)
    with engine.connect() as connection:
        return read_events(connection, window.columns, window.as_of)


def assert_same_features(actual: Features | None, expected: Features | None) -> None:
    assert (actual is None) == (expected is None)
    if expected is None:
        return
    np.testing.assert_array_equal(actual.customer_ids, expected.customer_ids)
    for name in ("tokens", "numeric", "static"):
        np.testing.assert_array_equal(getattr(actual, name), getattr(expected, name))
    assert actual.static_names == expected.static_names


def assert_same_training(actual: TrainingInputs, expected: TrainingInputs) -> None:
    a, e = actual.training, expected.training
    for part in ("train", "holdout"):
        assert_same_features(getattr(a, part).features, getattr(e, part).features)
        np.testing.assert_array_equal(getattr(a, part).labels, getattr(e, part).labels)
        assert getattr(a, part).cutoff == getattr(e, part).cutoff
    assert (a.train_cutoffs, a.skipped_cutoffs, a.vocab) == (
        e.train_cutoffs,
        e.skipped_cutoffs,
        e.vocab,
    )
    assert_same_features(actual.champion_holdout, expected.champion_holdout)
    assert_same_features(actual.reference, expected.reference)
    assert (actual.n_events, actual.first_event) == (expected.n_events, expected.first_event)
    for when in ("before", "now"):
        got, want = getattr(actual.level, when).arrays(), getattr(expected.level, when).arrays()
        for name, array in want.items():
            np.testing.assert_array_equal(got[name], array, err_msg=f"level.{when}.{name}")


def test_a_sample_that_covers_everyone_reads_what_one_frame_of_every_event_gives(
    engine, job_for, customers
):
    """Small databases train exactly as before the sample: chunks of 37 customers make the
    same rows, in the same order, as one frame of every event."""
    job = job_for(customers + 1)
    window = training_window(job, None, LOG)

    inputs = read_training_inputs(job, window, CHAMPION, LOG, chunk_customers=37)

    events = every_event(engine, job, window.as_of)
    expected = training_inputs(events, pd.Timestamp(window.as_of), job.plan, CHAMPION)
    assert_same_training(inputs, expected)
    with_events = events["customer_id"].nunique()
    assert (inputs.n_customers, inputs.population) == (with_events, with_events)


def md5_first(customer_ids, size: int) -> list[str]:
    """The reference sample: the customers first by the md5 of their id, computed here."""
    return sorted(
        sorted(customer_ids, key=lambda c: (hashlib.md5(c.encode()).hexdigest(), c))[:size]
    )


def test_the_sample_is_the_customers_first_by_md5_and_only_their_events_are_read(
    engine, job_for, customers
):
    job = job_for(120)
    window = training_window(job, None, LOG)

    inputs = read_training_inputs(job, window, CHAMPION, LOG, chunk_customers=50)

    events = every_event(engine, job, window.as_of)
    sample = md5_first(events["customer_id"].unique(), 120)
    sampled_events = events[events["customer_id"].isin(sample)]
    expected = training_inputs(sampled_events, pd.Timestamp(window.as_of), job.plan, CHAMPION)
    assert_same_training(inputs, expected)
    assert (inputs.n_customers, inputs.population) == (120, events["customer_id"].nunique())
    assert set(inputs.training.holdout.features.customer_ids) <= set(sample)


def test_the_sample_is_the_same_on_every_run(engine, job_for, customers):
    job = job_for(80)
    window = training_window(job, None, LOG)
    first, again = (read_training_inputs(job, window, None, LOG) for _ in range(2))
    assert_same_training(first, again)


def test_a_sample_size_beyond_the_population_trains_on_everyone_and_says_so(
    engine, job_for, customers, caplog
):
    job = job_for(10 * customers)
    window = training_window(job, None, LOG)
    with caplog.at_level(logging.INFO, logger="propensity"):
        inputs = read_training_inputs(job, window, None, LOG)
    assert inputs.n_customers == inputs.population < customers  # some never had an event
    assert f"training on every one of the {inputs.population} customers with" in caplog.text


def test_target_events_without_an_amount_are_counted_once_in_the_retrain_log(
    engine, job_for, customers, caplog
):
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE customer_events SET amount = NULL WHERE event_type = 'purchase' "
                "AND customer_id IN (SELECT customer_id FROM customers WHERE customer_id LIKE '%1')"
            )
        )
    job = job_for(10 * customers)
    window = training_window(job, None, LOG)
    with caplog.at_level(logging.INFO, logger="propensity"):
        read_training_inputs(job, window, None, LOG, chunk_customers=50)

    purchases = every_event(engine, job, window.as_of).query("event_type == 'purchase'")
    missing = int(purchases["amount"].isna().sum())
    assert 0 < missing < len(purchases)
    line = f"{missing:,} of the {len(purchases):,} 'purchase' events read have no amount"
    assert caplog.text.count(line) == 1


def test_a_retrain_whose_amounts_are_all_there_says_nothing_of_them(
    engine, job_for, customers, caplog
):
    job = job_for(10 * customers)
    with caplog.at_level(logging.INFO, logger="propensity"):
        read_training_inputs(job, training_window(job, None, LOG), None, LOG)
    assert "have no amount" not in caplog.text


@pytest.mark.parametrize("size", [0, -5])
def test_a_sample_size_below_one_is_refused_naming_the_setting(tiny, size):
    with pytest.raises(ValidationError, match="training_sample_size"):
        tiny(training_sample_size=size)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_inputs_kept_in_a_folder_load_as_they_were(engine, job_for, customers, tmp_path):
    job = job_for(100)
    window = training_window(job, None, LOG)
    inputs = read_training_inputs(job, window, CHAMPION, LOG)

    loaded = load_inputs(save_inputs(inputs, tmp_path / "inputs"))

    assert_same_training(loaded, inputs)
    assert (loaded.n_customers, loaded.population) == (inputs.n_customers, inputs.population)

"""Training and evaluation: determinism, every contender on one holdout, refused inputs."""

import dataclasses
import random
import threading

import numpy as np
import pandas as pd
import pytest

from llm_model.training import fit_model, resolve_as_of, train_and_evaluate


def test_same_data_and_seed_give_the_same_predictions(
    training, trained, tiny_config, sequence_config
):
    # Background threads (Prefect's, in the flows) draw from Python's global `random` too.
    stop = threading.Event()

    def draw_until_stopped() -> None:
        while not stop.wait(0.0005):
            random.random()

    other_thread = threading.Thread(target=draw_until_stopped)
    other_thread.start()
    try:
        again, _ = fit_model(training, tiny_config, sequence_config, verbose=0)
    finally:
        stop.set()
        other_thread.join()
    features = training.holdout.features
    np.testing.assert_array_equal(trained.raw_scores(features), again.raw_scores(features))


def test_train_and_evaluate_reports_every_contender_on_one_holdout(
    events, tiny_config, sequence_config
):
    result = train_and_evaluate(
        events,
        events["occurred_at"].max(),
        sequence_config,
        tiny_config,
        n_snapshots=3,
        stride_days=30,
    )
    table = result.evaluation.table
    assert set(table) == {"model", "model_raw", "recency", "rfm_logistic", "rfm_gbm"}
    n = {scores["n"] for scores in table.values()}
    assert n == {result.data.n_holdout}
    assert result.calibration.keys() >= {"identity"}


@pytest.mark.parametrize(
    ("requested", "message"),
    [("2030-01-01", "in the future"), ("2019-01-01", "before the first event")],
)
def test_as_of_outside_the_data_is_refused(requested, message):
    first, last, now = (pd.Timestamp(d) for d in ("2020-01-01", "2021-01-01", "2026-11-29"))
    with pytest.raises(ValueError, match=message):
        resolve_as_of(pd.Timestamp(requested), first, last, now)
    assert resolve_as_of(None, first, last, now) == last


def test_a_purchases_only_log_with_one_time_buyers_trains(events, tiny_config, sequence_config):
    purchases = events[events["event_type"] == "purchase"]
    one_time = purchases.groupby("customer_id").size().eq(1).sum()
    assert one_time > 0
    result = train_and_evaluate(
        purchases,
        purchases["occurred_at"].max(),
        sequence_config,
        tiny_config,
        n_snapshots=3,
        stride_days=30,
    )
    assert result.data.vocabulary == ("purchase",)
    assert 0.0 <= result.evaluation.table["model"]["roc_auc"] <= 1.0


def test_a_horizon_longer_than_the_data_is_refused(events, tiny_config, sequence_config):
    with pytest.raises(ValueError, match="no events at or before"):
        train_and_evaluate(
            events,
            events["occurred_at"].max(),
            dataclasses.replace(sequence_config, horizon_days=400),
            tiny_config,
            n_snapshots=3,
            stride_days=400,
        )

"""Every score run measures drift against its champion's training reference: real flows on
tiny data, on every back-end, checked against numpy from the rows themselves."""

import time
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventRelatedFilter,
    EventResourceFilter,
)
from prefect.events.worker import EventsWorker
from sqlalchemy import func, select

from db.engine import transaction
from db.models import Customer, CustomerEvent, PropensityScore, ScoreRun, ScoreRunDrift
from db.registry import promote
from flows.monitoring import DRIFT_EVENT
from flows.retrain import retrain
from flows.score import score
from llm_model.drift import SCORE, SHARE_FLOOR, DriftReference
from llm_model.sequences import build_features
from service.pseudonyms import BY_ID
from service.registry import register
from service.rendering import drift_line, score_markdown, stored_drift_table
from service.reports import latest_drift_check
from service.settings import ScoreRequest


def stored_drift(engine, run_id: int) -> dict[str, float]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ScoreRunDrift.feature, ScoreRunDrift.psi).where(
                ScoreRunDrift.score_run_id == run_id
            )
        ).all()
    return dict(rows)


def run_population(engine, run_id: int, as_of, package) -> tuple[np.ndarray, np.ndarray]:
    """The run's customers' static features, rebuilt from the stored events at its as_of,
    and its stored propensities."""
    with engine.connect() as connection:
        events = pd.read_sql(
            select(
                CustomerEvent.customer_id,
                CustomerEvent.event_type,
                CustomerEvent.occurred_at,
                CustomerEvent.amount,
            ).where(CustomerEvent.occurred_at <= as_of),
            connection,
        )
        active = connection.scalars(
            select(Customer.customer_id).where(Customer.is_active.is_(True))
        ).all()
        scores = connection.scalars(
            select(PropensityScore.propensity).where(PropensityScore.score_run_id == run_id)
        ).all()
    events = events.astype({"amount": float, "occurred_at": "datetime64[us]"})
    manifest = package.manifest
    features = build_features(
        events, sorted(active), pd.Timestamp(as_of), manifest.vocabulary, manifest.sequence
    )
    return features.static, np.asarray(scores, dtype=np.float64)


def numpy_psi(reference: DriftReference, static: np.ndarray, scores: np.ndarray) -> dict:
    """PSI of each column from its bins (lo, hi], written out."""
    out = {}
    for name, bins, values in zip(
        reference.names, reference.bins, [*static.T, scores], strict=True
    ):
        cuts = [-np.inf, *bins.edges, np.inf]
        actual = np.array([np.mean((values > lo) & (values <= hi)) for lo, hi in pairwise(cuts)])
        expected = np.maximum(bins.shares, SHARE_FLOOR)
        actual = np.maximum(actual, SHARE_FLOOR)
        out[name] = float(np.sum((actual - expected) * np.log(actual / expected)))
    return out


def latest_event(engine):
    with engine.connect() as connection:
        return connection.scalar(select(func.max(CustomerEvent.occurred_at)))


def drift_events(engine, run_id: int) -> list:
    """The drift events of the run as Prefect's API stores them (written asynchronously),
    those of its flow run: each test's database numbers its runs from 1."""
    with engine.connect() as connection:
        flow_run_id = connection.scalar(select(ScoreRun.flow_run_id).where(ScoreRun.id == run_id))
    EventsWorker.drain_all(timeout=10)
    wanted = EventFilter(
        event=EventNameFilter(name=[DRIFT_EVENT]),
        resource=EventResourceFilter(id=[f"propensity.score-run.{run_id}"]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
    )
    with get_client(sync_client=True) as client:
        for _ in range(40):
            # The client asks for 100 by default, more than the server answers.
            events = client.read_events(wanted, limit=10).events
            if events:
                return events
            time.sleep(0.5)
    return []


def test_a_score_run_stores_the_psi_of_every_static_feature_and_the_score(
    populated, make_champion, trained_packages
):
    make_champion("gru")
    package = trained_packages["gru"]
    reference = package.manifest.drift_reference

    summary = score()

    drift = stored_drift(populated, summary.score_run_id)
    assert list(reference.names) == [*package.manifest.static_names, SCORE]
    assert set(drift) == set(reference.names)
    static, scores = run_population(populated, summary.score_run_id, summary.as_of, package)
    assert len(scores) == len(static) == summary.n_scored
    expected = numpy_psi(reference, static, scores)
    assert drift == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert summary.drift.psi == pytest.approx(drift, rel=1e-12)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_drifted_population_is_flagged_named_and_announced_and_still_published(
    populated, make_champion, configure
):
    make_champion("gru")
    configure(drift_psi_threshold=0.2)

    # Ten months before the latest event most customers have no history yet.
    # Long before the model's training cutoff: in sample, which drift does not mind.
    past = latest_event(populated) - timedelta(days=300)
    drifted = score(request=ScoreRequest(as_of=past, in_sample=True))

    flagged = drifted.drift.drifted
    assert "frequency" in flagged
    # Everyone is 300 days younger there: tenure is measured, but no alarm.
    assert drifted.drift.psi["tenure"] > 0.2 and "tenure" not in flagged
    assert all(value > 0.2 for value in flagged.values())
    assert stored_drift(populated, drifted.score_run_id) == pytest.approx(drifted.drift.psi)
    line = drift_line(drifted)
    assert line.startswith("drift: PSI above 0.2 for ")
    assert all(name in line for name in flagged)
    assert f"{line}." in score_markdown(drifted, BY_ID)

    (event,) = drift_events(populated, drifted.score_run_id)
    assert event.payload["psi"] == pytest.approx(flagged)
    assert event.payload["threshold"] == 0.2
    model_resource = f"propensity.model-version.{drifted.model_version_id}"
    assert model_resource in {resource.id for resource in event.related}

    with populated.connect() as connection:
        table = stored_drift_table(latest_drift_check(connection, threshold=0.2))
    assert f"score run {drifted.score_run_id}" in table.title
    shown = {row[0]: row for row in table.rows}
    assert set(shown) == set(drifted.drift.psi)
    assert all(shown[name][2] == "drifted" for name in flagged)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_champion_without_a_drift_reference_scores_and_stores_no_drift(
    populated, trained_packages
):
    older = trained_packages["gbm"]
    older = replace(older, manifest=replace(older.manifest, drift_reference=None))
    with transaction(populated) as session:
        promote(session, register(session, older), "trained before drift was measured")

    summary = score()

    assert summary.n_scored > 0
    assert summary.drift is None
    assert stored_drift(populated, summary.score_run_id) == {}
    assert drift_line(summary).startswith("drift not measured: model version ")
    with populated.connect() as connection:
        assert latest_drift_check(connection, threshold=0.2) is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_score_right_after_a_retrain_finds_no_drift(populated):
    """The drift reference is the population at the retrain's data cutoff: a run on the same
    date compares like with like (the demo's first runs used to warn of tenure and recency
    drift, the ages a labelled snapshot one horizon older gives every customer)."""
    retrain()

    summary = score()

    assert summary.drift.drifted == {}
    assert drift_line(summary).startswith("no drift: every PSI is at most 0.2")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_new_mix_of_event_types_is_drift(populated, add_events):
    """Three days after the retrain every customer has opened emails as never before."""
    retrain()
    latest = latest_event(populated)
    with populated.connect() as connection:
        customers = connection.scalars(select(Customer.customer_id)).all()
    add_events(
        populated,
        [
            (customer, "email_open", latest + timedelta(days=day, hours=hour))
            for customer in customers
            for day in (1, 2, 3)
            for hour in (1, 2, 3)
        ],
    )

    summary = score()

    assert "count_email_open_7d" in summary.drift.drifted
    assert drift_line(summary).startswith("drift: PSI above 0.2 for ")

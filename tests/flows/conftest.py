"""Fixtures of the flow tests: one Prefect test server per session, tiny model settings,
a populated service database, champions of each kind trained once, and hand-built score
runs to judge."""

from collections.abc import Callable, Iterator
from datetime import datetime

import pandas as pd
import pytest
from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine

from db.engine import transaction
from db.event_import import event_keys, store_events
from db.registry import promote
from db.scores import publish_score_run, stage_scores, start_score_run
from flows.demo_data import load_synthetic_events
from flows.registry import ModelPackage, register
from flows.runtime import without_flow_heartbeats
from flows.settings import Settings
from llm_model.calibration import Calibrator
from llm_model.manifest import ModelManifest, ModelMetrics, TrainingData
from llm_model.sequences import SequenceConfig, Vocabulary
from llm_model.synthetic import generate
from llm_model.training import train_and_evaluate

POPULATION, SEED = 400, 3


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    # As in local_flow_runs: the harness's server ends with the session. Offline, as the CLI
    # runs it: no telemetry calls from the server.
    offline = temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False})
    with offline, prefect_test_harness(server_startup_timeout=90), without_flow_heartbeats():
        yield


TINY_SERVICE = {
    "PROPENSITY_EPOCHS": "1",
    "PROPENSITY_UNITS": "8",
    "PROPENSITY_N_SNAPSHOTS": "3",
    "PROPENSITY_MAX_LEN": "20",
    "PROPENSITY_PARTITION_SIZE": "120",
}


@pytest.fixture
def tiny_model(monkeypatch) -> None:
    """The flows' settings for a tiny model that trains in seconds."""
    for name, value in TINY_SERVICE.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def service(engine, database_url, monkeypatch, prefect_harness, tiny_model, tmp_path):
    """A migrated database that the flows' settings point at, with a tiny model config."""
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", database_url)
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))
    return engine


@pytest.fixture
def populated(service):
    load_synthetic_events(service, n_customers=POPULATION, seed=SEED)
    return service


@pytest.fixture(scope="session")
def trained_packages() -> dict[str, ModelPackage]:
    """Every contender of a retrain on the `populated` data, by kind, trained once per test
    session with the flows' tiny settings, as the retrain flow would package it.

    Retraining is most of a flow test's time; tests that only need some champion register
    one of these instead. The data is the same: the generator is seeded.
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in TINY_SERVICE.items():
            patch.setenv(name, value)
        settings = Settings(_env_file=None)
    events = generate(POPULATION, seed=SEED).events
    as_of = pd.Timestamp(events["occurred_at"].max())
    result = train_and_evaluate(events, as_of, settings.training_plan(), verbose=0)
    metric = settings.selection_metric
    return {
        kind: ModelPackage.of(result, kind, metric, as_of.to_pydatetime(), None)
        for kind in result.contenders.models
    }


@pytest.fixture
def make_champion(populated, trained_packages) -> Callable[[str], int]:
    """make_champion(kind): that contender registered as champion in `populated`; its id."""

    def register_as_champion(kind: str) -> int:
        package = trained_packages[kind]
        with transaction(populated) as session:
            version = register(session, package)
            promote(session, version, f"test champion ({kind})")
            return version.id

    return register_as_champion


@pytest.fixture
def champion(populated, make_champion):
    """`populated` with the recurrent contender registered as champion."""
    make_champion("gru")
    return populated


@pytest.fixture
def gbm_champion(populated, make_champion):
    """`populated` with the gradient boosting contender registered as champion."""
    make_champion("gbm")
    return populated


# --- hand-built score runs for monitoring ------------------------------------------------


@pytest.fixture
def judged_package() -> ModelPackage:
    """A model with the manifest and holdout metrics of a registered logistic model (target
    purchase, 30-day horizon); its bytes are never loaded."""
    data = TrainingData("2026-05-01", 1000, ("2026-03-02",), "2026-04-01", 300, 100, 0.2, 0.25, ())
    holdout = {"roc_auc": 0.75, "pr_auc": 0.5, "log_loss": 0.4, "brier": 0.12, "ece": 0.03}
    return ModelPackage(
        artifact=b"never loaded",
        manifest=ModelManifest(
            "logistic",
            SequenceConfig(horizon_days=30, target_event="purchase"),
            Vocabulary(("purchase", "visit")),
            Calibrator("identity"),
            ("frequency",),
            2,
            30,
        ),
        metrics=ModelMetrics(
            {"logistic": {**holdout, "top_decile_lift": 2.5}}, ("logistic",), "logistic", data
        ),
        trained_as_of=datetime(2026, 5, 1),
    )


def event_frame(events: list[tuple[str, str, datetime]]) -> pd.DataFrame:
    """(customer_id, event_type, occurred_at) tuples as store_events takes them."""
    frame = pd.DataFrame(events, columns=["customer_id", "event_type", "occurred_at"])
    frame = frame.astype({"occurred_at": "datetime64[us]"}).assign(amount=float("nan"))
    return frame.assign(event_id=event_keys(frame))


@pytest.fixture
def add_events() -> Callable[[Engine, list[tuple[str, str, datetime]]], None]:
    """add_events(engine, events): store (customer_id, event_type, occurred_at) events."""

    def store(engine: Engine, events: list[tuple[str, str, datetime]]) -> None:
        with transaction(engine) as session:
            store_events(session, event_frame(events))

    return store


@pytest.fixture
def hand_scored_run(judged_package) -> Callable[..., int]:
    """hand_scored_run(engine, as_of, propensities, events): a published score run as of
    `as_of` of `judged_package` with these propensities by customer, the (customer_id,
    event_type, occurred_at) `events` stored beside; its id."""

    def publish(
        engine: Engine,
        as_of: datetime,
        propensities: dict[str, float],
        events: list[tuple[str, str, datetime]],
    ) -> int:
        with transaction(engine) as session:
            if events:
                store_events(session, event_frame(events))
            model_id = register(session, judged_package).id
            run_id = start_score_run(session, as_of, model_id, None)
        scores = pd.DataFrame(
            {"customer_id": list(propensities), "propensity": list(propensities.values())}
        )
        with engine.begin() as connection:
            stage_scores(connection, run_id, scores)
        with transaction(engine) as session:
            publish_score_run(session, run_id, keep_succeeded=5)
        return run_id

    return publish

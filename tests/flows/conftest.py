"""Fixtures of the flow tests: one Prefect test server per session, tiny model settings,
a populated service database and champions of each kind trained once."""

from collections.abc import Callable, Iterator

import pandas as pd
import pytest
from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from db.engine import transaction
from db.registry import promote
from flows.demo_data import load_synthetic_events
from flows.registry import ModelPackage, register
from flows.runtime import without_flow_heartbeats
from flows.settings import Settings
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

"""Fixtures of the flow tests: one Prefect test server per session, tiny model settings,
a populated service database and a champion trained once."""

from collections.abc import Iterator

import pytest
from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import make_engine
from db.migrate import upgrade
from db.models import ModelVersion
from flows.demo_data import load_synthetic_events
from flows.retrain import retrain
from flows.runtime import without_flow_heartbeats

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
def trained_champion(prefect_harness, tmp_path_factory) -> dict:
    """The retrain flow's champion on the `populated` data, trained once per test session.

    Retraining is most of a flow test's time; tests that only need some champion copy this
    one's model_versions row instead. The data is the same: the generator is seeded.
    """
    folder = tmp_path_factory.mktemp("champion")
    url = f"sqlite:///{folder / 'propensity.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROPENSITY_DATABASE_URL", url)
        patch.setenv("PROPENSITY_REPORTS_DIR", str(folder / "reports"))
        for name, value in TINY_SERVICE.items():
            patch.setenv(name, value)
        engine = make_engine(url)
        with engine.begin() as connection:
            upgrade(connection)
        load_synthetic_events(engine, n_customers=POPULATION, seed=SEED)
        retrain(force_promote=True)
    with Session(engine) as session:
        version = session.scalars(select(ModelVersion)).one()
        row = {column.key: getattr(version, column.key) for column in ModelVersion.__table__.c}
    engine.dispose()
    del row["id"]
    return row


@pytest.fixture
def champion(populated, trained_champion):
    """`populated` with that champion registered."""
    with Session(populated) as session, session.begin():
        session.add(ModelVersion(**trained_champion))
    return populated

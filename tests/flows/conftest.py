import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import make_engine
from db.models import ModelVersion
from flows.resources import load_synthetic_events
from flows.retrain import retrain

POPULATION, SEED = 400, 3

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

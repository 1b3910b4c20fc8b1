import pytest

from flows.resources import load_synthetic_events

TINY_SERVICE = {
    "PROPENSITY_EPOCHS": "1",
    "PROPENSITY_UNITS": "8",
    "PROPENSITY_N_SNAPSHOTS": "3",
    "PROPENSITY_MAX_LEN": "20",
    "PROPENSITY_PARTITION_SIZE": "120",
}


@pytest.fixture
def service(engine, database_url, monkeypatch, prefect_harness, tmp_path):
    """A migrated database that the flows' settings point at, with a tiny model config."""
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", database_url)
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))
    for name, value in TINY_SERVICE.items():
        monkeypatch.setenv(name, value)
    return engine


@pytest.fixture
def populated(service):
    load_synthetic_events(service, n_customers=400, seed=3)
    return service

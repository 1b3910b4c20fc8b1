"""`propensity import-events` and `generate-demo-data` through the bulk path, on every
database: what the user is told, and that running either again adds nothing."""

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from db.models import Customer, CustomerEvent

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def cli_database(engine, database_url, monkeypatch):
    """The migrated test database, as the CLI finds it."""
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", database_url)
    return engine


def stored(engine) -> tuple[int, int]:
    """(customers, events)."""
    with engine.connect() as connection:
        return tuple(
            connection.scalar(select(func.count()).select_from(model))
            for model in (Customer, CustomerEvent)
        )


def test_import_says_when_it_adds_the_staged_rows_and_again_adds_nothing(cli_database, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "customer_id,occurred_at,event_type,amount\n"
        "c1,2026-01-01 10:00,visit,\nC1,2026-01-02 10:00,purchase,5\nc2,2026-01-03,visit,\n"
    )
    first = invoke("import-events", str(path))
    assert first.exit_code == 0, first.output
    assert "3 valid rows read; adding those not yet stored" in first.output
    assert "3 events imported, 0 already present or repeated, 0 rejected; 3 new" in first.output
    again = invoke("import-events", str(path))
    assert "0 events imported, 3 already present or repeated, 0 rejected; 0 new" in again.output
    assert stored(cli_database) == (3, 3)


def test_demo_data_generated_twice_is_stored_once(cli_database):
    first = invoke("generate-demo-data", "--customers", "30", "--seed", "4")
    assert first.exit_code == 0, first.output
    customers, events = stored(cli_database)
    assert customers == 30 and events > 30
    assert invoke("generate-demo-data", "--customers", "30", "--seed", "4").exit_code == 0
    assert stored(cli_database) == (customers, events)

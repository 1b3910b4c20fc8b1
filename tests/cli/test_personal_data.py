"""A customer erased as an operator erases one, through the commands, on every database:
no trace of the id left in any table or column of the service's schema, the ranks closed
up, a re-import skipping them; then old events purged and the service going on (retrain,
score, evaluate) on the shorter history, which the model card states."""

import csv
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, String, Text, func, or_, select, text
from typer.testing import CliRunner

from cli.main import app
from db.models import Base, CustomerEvent, Erasure

runner = CliRunner()
SUPPRESSION_KEY = "a test suppression key, 32 bytes"


def invoke(*args: str):
    return runner.invoke(app, list(args))


def traces(engine: Engine, customer_id: str) -> dict[str, int]:
    """Per table.column of the service's schema holding text, the rows that hold the id."""
    found = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, String | Text):
                    holds = or_(column == customer_id, column.contains(customer_id))
                    rows = connection.scalar(select(func.count()).where(holds))
                    if rows:
                        found[f"{table.name}.{column.name}"] = rows
    return found


@pytest.fixture
def cli_service(populated, database_url, tiny_model, monkeypatch, tmp_path) -> Engine:
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", database_url)
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("PROPENSITY_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("PROPENSITY_SUPPRESSION_KEY", SUPPRESSION_KEY)
    return populated


def export_events(engine: Engine, customer_id: str, path: Path) -> int:
    with engine.connect() as connection:
        rows = connection.execute(
            select(CustomerEvent.occurred_at, CustomerEvent.event_type, CustomerEvent.amount)
            .where(CustomerEvent.customer_id == customer_id)
            .order_by(CustomerEvent.occurred_at)
        ).all()
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["customer_id", "occurred_at", "event_type", "amount"])
        for at, event_type, amount in rows:
            writer.writerow([customer_id, f"{at:%Y-%m-%d %H:%M:%S}", event_type, amount or ""])
    return len(rows)


@pytest.mark.usefixtures("gbm_champion")
def test_forget_then_purge_through_the_commands(cli_service, monkeypatch, tmp_path):
    engine = cli_service
    scored_first = invoke("score")
    assert scored_first.exit_code == 0, scored_first.output
    with engine.connect() as connection:
        best = connection.scalar(
            text("SELECT customer_id FROM current_propensity_scores WHERE rank = 1")
        )
        scored = connection.scalar(text("SELECT COUNT(*) FROM current_propensity_scores"))
    assert traces(engine, best)  # a real search: the id is there before
    csv_path = tmp_path / "again.csv"
    n_events = export_events(engine, best, csv_path)

    forgot = invoke("forget", best, "nobody-known")
    assert forgot.exit_code == 0, forgot.output
    assert "erased 1 of 2 customer(s) asked" in forgot.output
    assert best not in forgot.output.replace("nobody-known", "")

    assert traces(engine, best) == {}
    with engine.connect() as connection:
        ranks = connection.scalars(
            text("SELECT rank FROM current_propensity_scores ORDER BY rank")
        ).all()
        log = connection.execute(select(Erasure.kind, Erasure.customers)).all()
    assert ranks == list(range(1, scored))  # closed up: rank <= 10 is ten rows again
    assert log == [("forget", 1)]

    again = invoke("import-events", str(csv_path))
    assert again.exit_code == 0, again.output
    assert f"{n_events:,} rows of erased customers skipped" in again.output
    assert traces(engine, best) == {}

    # Keep 120 days: the synthetic history ends 2026-10-31, so months of it go.
    monkeypatch.setenv("PROPENSITY_EVENT_RETENTION_DAYS", "120")
    with engine.connect() as connection:
        before = connection.scalar(select(func.count()).select_from(CustomerEvent))
    purged = invoke("purge")
    assert purged.exit_code == 0, purged.output
    with engine.connect() as connection:
        after = connection.scalar(select(func.count()).select_from(CustomerEvent))
        earliest = connection.scalar(select(func.min(CustomerEvent.occurred_at)))
    assert 0 < after < before
    assert f"{before - after:,} events of" in purged.output

    for command in ("retrain", "score", "evaluate"):
        result = invoke(command)
        assert result.exit_code == 0, f"{command}: {result.output}"
    # The card says how far back the history it was trained on reaches: no earlier than
    # what the purge kept.
    card = invoke("report").output
    shown = re.search(r"earliest event read\W+(\d{4}-\d{2}-\d{2})", card)
    assert shown is not None, card
    assert shown[1] >= f"{earliest:%Y-%m-%d}"

"""Ids and event types are data, never instructions: Rich markup, Markdown, table pipes,
newlines and terminal escapes from the data are shown as text, in every command's output
and in the Prefect artifacts, on every database."""

import csv
import re
from datetime import timedelta

import pytest
from prefect.artifacts import Artifact
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from cli.main import app
from db.models import CustomerEvent
from service.rendering import markdown_text, printable

HOSTILE_IDS = ["[/oops]", "![x](http://e/x.png)", "a|b", "two\nlines", "esc\x1b[2J"]
HOSTILE_TYPE = "[/x] *y*"
TOO_LONG_ID = "k" * 1024
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def hostile_events(path, latest) -> None:
    """Each hostile customer buys every day for the last 300 days (so they rank at the top)
    and has events of the hostile type; one row's id is 1 KB long."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "occurred_at", "event_type", "amount"])
        for customer in HOSTILE_IDS:
            for day in range(300):
                at = latest - timedelta(days=day, hours=1)
                writer.writerow([customer, f"{at:%Y-%m-%d %H:%M:%S}", "purchase", "50"])
                writer.writerow([customer, f"{at:%Y-%m-%d %H:%M:%S}", HOSTILE_TYPE, ""])
        writer.writerow([TOO_LONG_ID, f"{latest:%Y-%m-%d %H:%M:%S}", "purchase", "1"])


@pytest.fixture
def hostile_service(populated, database_url, tiny_model, monkeypatch, tmp_path):
    """The populated database, as the CLI sees it, with the hostile customers imported."""
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", database_url)
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))
    # Ids in the artifacts, as an operator may opt in: there they must be inert too.
    monkeypatch.setenv("PROPENSITY_NAME_CUSTOMERS_IN_ARTIFACTS", "true")
    with populated.connect() as connection:
        latest = connection.scalar(select(func.max(CustomerEvent.occurred_at)))
    path = tmp_path / "hostile.csv"
    hostile_events(path, latest)
    imported = invoke("import-events", str(path), "--skip-invalid")
    assert imported.exit_code == 0, imported.output
    return populated, imported


def assert_inert_on_the_terminal(output: str) -> None:
    assert "\x1b" not in output
    assert "two\nlines" not in output


def test_hostile_ids_and_event_types_are_shown_inert_everywhere(hostile_service):
    engine, imported = hostile_service
    said = " ".join(imported.output.split())
    assert "1 rejected" in said and "customer_id too long" in said
    assert_inert_on_the_terminal(imported.output)

    steps = {name: invoke(name) for name in ("retrain", "score", "report", "evaluate")}

    for name, result in steps.items():
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert_inert_on_the_terminal(result.output)
    with engine.connect() as connection:
        scored = set(connection.scalars(text("SELECT customer_id FROM current_propensity_scores")))
    assert set(HOSTILE_IDS) <= scored
    # The hostile customers rank first: the terminal and the artifact show each as text.
    for customer in HOSTILE_IDS:
        assert printable(customer) in steps["score"].output
    markdown = Artifact.get("score-run").data
    for customer in HOSTILE_IDS:
        assert customer not in markdown
        assert markdown_text(customer) in markdown
    assert "\x1b" not in markdown
    top_table = [line for line in markdown.splitlines() if line.startswith("|")][-12:]
    cells = {len(UNESCAPED_PIPE.findall(line)) for line in top_table}
    assert cells == {6}  # five columns in every line: no pipe or newline split a row

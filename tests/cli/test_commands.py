"""The command line as a user meets it: one-line errors, non-zero exits, no passwords."""

from datetime import datetime, timedelta

import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)
from sqlalchemy import func, select
from typer.testing import CliRunner

# TensorFlow writes to stderr while it loads: load it before CliRunner swaps stderr out.
import llm_model.model  # noqa: F401
from cli import terminal
from cli.main import app
from cli.process import local_flow_runs
from db.drift import store_drift
from db.engine import make_engine, transaction
from db.models import Customer, CustomerEvent
from service.registry import database_reports
from service.rendering import TextTable

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def sqlite_service(tmp_path, monkeypatch):
    """A new database, set up as the README says: `propensity init-db`."""
    url = f"sqlite:///{tmp_path / 'service.db'}"
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", url)
    assert invoke("init-db").exit_code == 0
    return url


def test_a_database_without_the_schema_is_named_in_one_line(tmp_path, monkeypatch):
    """Commands other than init-db and the demo never migrate; they say what to run."""
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    path = tmp_path / "events.csv"
    path.write_text("customer_id,occurred_at,event_type,amount\nc1,2026-01-01,visit,\n")
    for command in (["import-events", str(path)], ["report"], ["score"], ["retrain"]):
        result = invoke(*command)
        assert result.exit_code == 1
        assert result.output.strip().splitlines() == [
            "error: database has no propensity schema: run `propensity init-db`"
        ]


def test_unreachable_database_is_one_line_naming_the_host_not_the_password(monkeypatch):
    monkeypatch.setenv(
        "PROPENSITY_DATABASE_URL", "postgresql+psycopg://analyst:s3cret-pw@127.0.0.1:9/scores"
    )
    result = invoke("init-db")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "cannot reach database" in lines[0]
    assert "127.0.0.1:9" in lines[0]
    assert "s3cret-pw" not in result.output
    assert "Traceback" not in result.output


def test_invalid_setting_is_reported_by_name(monkeypatch):
    monkeypatch.setenv("PROPENSITY_HORIZON_DAYS", "soon")
    result = invoke("init-db")
    assert result.exit_code == 1
    assert "invalid settings: horizon_days" in result.output


def test_import_events_reports_rejected_rows_and_imports_nothing(sqlite_service, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "customer_id,occurred_at,event_type,amount\n"
        "c1,2026-01-01T00:00:00Z,visit,\n"
        "c2,31/02/2026,visit,\n"
    )
    result = invoke("import-events", str(path))
    assert result.exit_code == 1
    assert "row 2: unparseable occurred_at: 31/02/2026" in result.output
    assert "Traceback" not in result.output
    with make_engine(sqlite_service).connect() as connection:
        assert connection.scalar(select(func.count()).select_from(CustomerEvent)) == 0


def test_import_events_skip_invalid_then_reimport_adds_nothing(sqlite_service, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "user,ts,kind\nc1,2026-01-01 10:00,visit\nc1,2026-01-02 10:00,purchase\n,2026-01-03,visit\n"
    )
    mapping = ["--customer-id-column", "user", "--occurred-at-column", "ts"]
    mapping += ["--event-type-column", "kind", "--amount-column", ""]
    first = invoke("import-events", str(path), *mapping, "--skip-invalid")
    assert first.exit_code == 0, first.output
    assert "2 events imported" in first.output
    assert "1 rejected" in first.output
    assert (tmp_path / "events.csv.rejected.csv").read_text().count("missing customer_id") == 1
    second = invoke("import-events", str(path), *mapping, "--skip-invalid")
    assert "0 events imported, 2 already present" in second.output


def test_missing_file_and_bad_cell_are_clear(sqlite_service, tmp_path):
    missing = invoke("import-events", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 1
    assert "no such file" in missing.output
    bad_cell = invoke("retrain", "--cell", "transformer")
    assert bad_cell.exit_code == 1
    assert "--cell must be gru or lstm" in bad_cell.output


def test_sign_models_needs_the_key_and_signs_only_what_is_unsigned(sqlite_service, monkeypatch):
    refused = invoke("sign-models")
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        "error: PROPENSITY_SIGNING_KEY is not set: there is nothing to sign with"
    )
    monkeypatch.setenv("PROPENSITY_SIGNING_KEY", "short")
    assert "at least 16 characters" in invoke("sign-models").output
    monkeypatch.setenv("PROPENSITY_SIGNING_KEY", "a-signing-key-of-32-characters!!")
    signed = invoke("sign-models")
    assert signed.exit_code == 0, signed.output
    assert "every model version with an intact artifact was signed already" in signed.output


def test_demo_reuses_the_events_already_in_the_database(
    sqlite_service, prefect_harness, tiny_model, monkeypatch, tmp_path
):
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))
    first = invoke("demo", "--customers", "200", "--seed", "1")
    assert first.exit_code == 0, first.output
    assert "generating 200 synthetic customers" in first.output
    with make_engine(sqlite_service).connect() as connection:
        events = connection.scalar(select(func.count()).select_from(CustomerEvent))
    # Another seed would generate other customers: none may be added.
    second = invoke("demo", "--customers", "300", "--seed", "2")
    assert second.exit_code == 0, second.output
    assert "reusing the events already in the database" in second.output
    with make_engine(sqlite_service).connect() as connection:
        assert connection.scalar(select(func.count()).select_from(CustomerEvent)) == events
        assert connection.scalar(select(func.count()).select_from(Customer)) == 200
    assert "top customers" in second.output
    # The query to run is printed line by line, not with its newlines escaped.
    assert "FROM current_propensity_scores\nWHERE decile = 1" in second.output
    assert "\\n" not in second.output
    # The ordinary rule, never a forced promotion: the first retrain's best contender won.
    assert "forced" not in first.output
    assert "champion — first champion:" in first.output


def test_flow_heartbeats_are_off_only_without_a_lasting_prefect_server():
    default = PREFECT_FLOWS_HEARTBEAT_FREQUENCY.default()
    with temporary_settings(
        updates={PREFECT_API_URL: None, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: default}
    ):
        with local_flow_runs():
            assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == default
    lasting_server = {
        PREFECT_API_URL: "http://127.0.0.1:4200/api",
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY: default,
    }
    with temporary_settings(updates=lasting_server), local_flow_runs():
        assert get_current_settings().flows.heartbeat_frequency == default


def test_evaluate_prints_each_runs_outcome_or_when_it_matures(
    sqlite_service, hand_scored_run, monkeypatch, tmp_path
):
    as_of = datetime(2026, 6, 1)
    scores = {f"c{i:02d}": (i + 1) / 21 for i in range(20)}
    events = [(c, "purchase", as_of + timedelta(days=2)) for c in ("c19", "c18", "c03")]
    engine = make_engine(sqlite_service)
    matured = hand_scored_run(
        engine, as_of, scores, [*events, ("c00", "visit", as_of + timedelta(days=30))]
    )
    waiting = hand_scored_run(engine, as_of + timedelta(days=5), scores, [])
    # Wide enough for the table's thirteen columns on one line each.
    monkeypatch.setattr(terminal.console, "width", 260)
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))

    result = invoke("evaluate")

    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.output.splitlines() if line.startswith("│")]
    cells = {int(row[0]): [cell.strip() for cell in row[1:]] for row in rows}
    assert set(cells) == {matured, waiting}, result.output
    # The buyers outrank 17, 17 and 3 of the 17 others: 37 of 51 pairs.
    assert cells[matured][:3] == ["2026-06-01 00:00", "logistic", "20"]
    assert cells[matured][3:6] == ["3", "0.1500", f"{37 / 51:.4f}"]
    # The lift, then the value figures: the run was published without expected values.
    assert cells[matured][-4:] == [f"{1 / 0.15:.2f}", "n/a", "n/a", "n/a"]
    assert cells[waiting][2] == "not matured until 2026-07-06 00:00"
    again = invoke("evaluate").output
    assert "not matured until 2026-07-06" in again and "2026-06-01" not in again

    report = invoke("report")
    assert report.exit_code == 0, report.output
    assert "realized / the model's holdout" in report.output
    assert "0.1500 / 0.2500" in report.output
    chart = database_reports(tmp_path / "reports", engine.url) / "monitoring.png"
    assert f"chart: {chart}" in report.output

    missing = invoke("evaluate", "--run-id", "99")
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == ["error: score run 99 does not exist"]


def test_report_shows_the_latest_runs_drift_flagged_by_the_threshold_setting(
    sqlite_service, hand_scored_run, monkeypatch, tmp_path
):
    engine = make_engine(sqlite_service)
    run_id = hand_scored_run(engine, datetime(2026, 6, 1), {"c1": 0.5, "c2": 0.25}, [])
    monkeypatch.setenv("PROPENSITY_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setattr(terminal.console, "width", 200)
    before = invoke("report")
    assert before.exit_code == 0, before.output
    assert "no score run measured drift yet" in before.output
    with transaction(engine) as session:
        store_drift(session, run_id, {"frequency": 0.25, "propensity": 0.5})
    monkeypatch.setenv("PROPENSITY_DRIFT_PSI_THRESHOLD", "0.3")

    report = invoke("report")

    assert report.exit_code == 0, report.output
    # The title wraps to the table's width.
    assert f"drift of score run {run_id} (as of 2026-06-01)" in " ".join(report.output.split())
    rows = [line.split("│")[1:-1] for line in report.output.splitlines() if line.startswith("│")]
    cells = {row[0].strip(): [cell.strip() for cell in row[1:]] for row in rows}
    assert cells["propensity"] == ["0.5000", "drifted"]
    assert cells["frequency"] == ["0.2500", ""]


def test_a_table_printed_off_a_terminal_keeps_every_cell_whole(capsys):
    cells = ["1998-03-30 00:00:00", "champion", "gru_hybrid #12", "23,570", "0.0602"]
    wide = TextTable("backtest", tuple(f"column {i}" for i in range(12)), [cells * 2 + cells[:2]])
    terminal.show_table(wide)
    row = next(line for line in capsys.readouterr().out.splitlines() if "champion" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == wide.rows[0]

"""Least privilege: the roles `propensity grants` prints run every command of the service,
and no more: the owner migrates, the service (DML only) imports, retrains, scores, judges,
erases and purges, and the reader sees the score views, never the tables."""

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

# TensorFlow writes to stderr while it loads: load it before CliRunner swaps stderr out.
import llm_model.model  # noqa: F401
from cli.main import app
from db.grants import (
    ROLE_KINDS,
    VERSION_TABLE,
    Roles,
    password_placeholder,
    reader_views,
    service_tables,
    statements,
)

runner = CliRunner()
SUPPRESSION_KEY = "a suppression key of the grants test"
AS_OF = "2026-09-15"  # the synthetic events end on 2026-11-01: this run matures before


def invoke(*args: str):
    return runner.invoke(app, list(args))


def backend_of(url: str) -> str:
    return "postgresql" if make_url(url).get_backend_name() == "postgresql" else "mysql"


@pytest.fixture
def roles(database_url) -> Iterator[Roles]:
    """Role names of this test only (PostgreSQL's are the whole cluster's), dropped after it
    with whatever they own or were granted."""
    suffix = uuid.uuid4().hex[:8]
    names = Roles(*(f"propensity_{kind}_{suffix}" for kind in ROLE_KINDS))
    yield names
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        every = [names.of(kind) for kind in ROLE_KINDS]
        if backend_of(database_url) == "postgresql":
            existing = connection.scalars(
                text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"),
                {"names": every},
            ).all()
            if existing:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE usename = ANY(:names)"
                    ),
                    {"names": every},
                )
                # One at a time: PostgreSQL 15 fails to drop the owner's default privileges
                # for the service when both roles are named in one DROP OWNED.
                for name in existing:
                    connection.execute(text(f"DROP OWNED BY {name}"))
                connection.execute(text(f"DROP ROLE {', '.join(existing)}"))
        else:
            for name in every:
                connection.execute(text(f"DROP USER IF EXISTS '{name}'@'%'"))
    admin.dispose()


def password(kind: str) -> str:
    return f"pw-{kind}-of-the-test"


def as_role(url: str, role: str, kind: str) -> str:
    return make_url(url).set(username=role, password=password(kind)).render_as_string(False)


def run_script(url: str, lines: list[str]) -> None:
    """Execute the printed statements as they stand, the password placeholders replaced."""
    backend = backend_of(url)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        # No parameters: the statements' own % and : are theirs, not placeholders.
        with engine.connect().execution_options(no_parameters=True) as connection:
            for statement in statements(lines):
                for kind in ROLE_KINDS:
                    placeholder = password_placeholder(backend, kind)
                    statement = statement.replace(placeholder, f"'{password(kind)}'")
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


# How each database refuses a statement for want of a privilege.
REFUSALS = ("permission denied", "must be owner", "command denied", "Access denied")


def refused(url: str, statement: str) -> str:
    """The error the database gives `statement` run at `url` (it must fail)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection, pytest.raises(DBAPIError) as error:
            connection.execute(text(statement))
    finally:
        engine.dispose()
    message = str(error.value.orig)
    assert any(refusal in message for refusal in REFUSALS), message
    return message


def scalar(url: str, query: str):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(text(query))
    finally:
        engine.dispose()


def succeeded(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, f"propensity {' '.join(args)}:\n{result.output}"
    return result.output


@pytest.mark.parametrize("database_url", ["postgresql", "mysql"], indirect=True)
def test_the_printed_roles_run_every_command_and_the_reader_sees_only_the_views(
    database_url, roles, prefect_harness, tiny_model, monkeypatch, tmp_path
):
    names = ["--owner", roles.owner, "--service", roles.service, "--reader", roles.reader]
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", database_url)
    script = invoke("grants", *names).stdout.splitlines()
    after_init_db = invoke("grants", *names, "--after-init-db").stdout.splitlines()
    assert statements(after_init_db)
    assert script[-len(after_init_db) :] == after_init_db
    owner_url, service_url, reader_url = (
        as_role(database_url, roles.of(kind), kind) for kind in ROLE_KINDS
    )

    # The administrator creates the roles; the owner migrates, then grants.
    run_script(database_url, script[: -len(after_init_db)])
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", owner_url)
    succeeded("init-db")
    run_script(owner_url, after_init_db)
    admin = create_engine(database_url)
    with admin.connect() as connection:
        assert set(inspect(connection).get_table_names()) == {*service_tables(), VERSION_TABLE}
        assert set(inspect(connection).get_view_names()) == set(reader_views())
    admin.dispose()

    # Every command the service runs, as the service.
    for name, value in {
        "DATABASE_URL": service_url,
        "REPORTS_DIR": str(tmp_path / "reports"),
        "WORK_DIR": str(tmp_path / "work"),
        "SUPPRESSION_KEY": SUPPRESSION_KEY,
        "SIGNING_KEY": "a signing key of the grants test",
    }.items():
        monkeypatch.setenv(f"PROPENSITY_{name}", value)
    succeeded("generate-demo-data", "--customers", "150", "--seed", "5")
    events = tmp_path / "events.csv"
    events.write_text(
        "customer_id,occurred_at,event_type,amount\n"
        "imported-1,2026-08-01 10:00,visit,\nimported-1,2026-08-02 10:00,purchase,12.5\n"
    )
    assert "2 events imported" in succeeded("import-events", str(events))
    succeeded("retrain", "--as-of", AS_OF)
    succeeded("score", "--as-of", AS_OF)
    succeeded("evaluate")
    assert scalar(database_url, "SELECT COUNT(*) FROM score_run_outcomes") == 1
    succeeded("report")
    best = scalar(database_url, "SELECT customer_id FROM current_propensity_scores WHERE rank = 1")
    assert "erased 2 of 2 customer(s)" in succeeded("forget", best, "imported-1")
    first = scalar(database_url, "SELECT MIN(occurred_at) FROM customer_events")
    days = (datetime.now(UTC).replace(tzinfo=None) - first).days - 20
    monkeypatch.setenv("PROPENSITY_EVENT_RETENTION_DAYS", str(days))
    count = "SELECT COUNT(*) FROM customer_events"
    before = scalar(database_url, count)
    succeeded("purge")
    assert 0 < scalar(database_url, count) < before

    # ... and nothing beyond DML.
    refused(service_url, "CREATE TABLE intruder (id INTEGER)")
    refused(service_url, "CREATE TEMPORARY TABLE intruder (id INTEGER)")
    refused(service_url, f"DELETE FROM {VERSION_TABLE}")
    refused(service_url, "DROP TABLE customer_events")

    # The reader: the score and monitoring views, no table.
    assert scalar(reader_url, "SELECT COUNT(*) FROM current_propensity_scores") > 100
    assert scalar(reader_url, "SELECT COUNT(*) FROM score_run_monitoring") == 1
    for table in ("customer_events", "model_versions"):
        refused(reader_url, f"SELECT * FROM {table}")
    refused(reader_url, "CREATE TEMPORARY TABLE intruder (id INTEGER)")


def granted(lines: list[str], privileges: str, role: str) -> set[str]:
    """The objects the script's GRANT `privileges` statements give `role` (the database
    name of MariaDB's `db`.`name` left out)."""
    pattern = re.compile(rf"GRANT {privileges} ON (.+) TO '?{role}\b")
    names = set()
    for line in lines:
        if found := pattern.match(line):
            names |= {name.split(".")[-1].strip("`") for name in found.group(1).split(", ")}
    return names


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://admin@db/propensity", "mysql+pymysql://admin@db/propensity"]
)
def test_the_script_grants_every_table_and_only_the_latest_views_to_the_reader(url, monkeypatch):
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", url)
    result = invoke("grants")
    assert result.exit_code == 0, result.output
    lines = statements(result.stdout.splitlines())
    dml = granted(lines, "SELECT, INSERT, UPDATE, DELETE", "propensity_service")
    assert dml == set(service_tables())
    assert granted(lines, "SELECT", "propensity_service") == {VERSION_TABLE}
    assert reader_views() == ("current_propensity_scores", "score_run_monitoring")
    assert granted(lines, "SELECT", "propensity_reader") == set(reader_views())
    assert not [line for line in lines if re.search(r"\bTEMP|ALL PRIVILEGES", line)]


def test_sqlite_has_no_roles_and_bad_names_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", f"sqlite:///{tmp_path / 'service.db'}")
    sqlite = invoke("grants")
    assert sqlite.exit_code == 0
    assert len(sqlite.stdout.splitlines()) == 1 and "0600" in sqlite.stdout
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", "postgresql+psycopg://admin@db/propensity")
    bad = invoke("grants", "--reader", "x; DROP TABLE customers")
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines() == [
        "error: role name 'x; DROP TABLE customers': lower-case letters, digits and _, not "
        "starting with a digit, at most 63"
    ]

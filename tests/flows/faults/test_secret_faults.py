"""Secrets: a password is masked wherever a database URL carries it (user info, a
`password=` or `passfile=` query parameter), on every channel a failing run writes to:
the command line, log records, Prefect's run logs and state, and score_runs.error."""

import logging
import re

import pytest
from sqlalchemy import make_url, select
from typer.testing import CliRunner

from cli.main import app
from db.engine import safe_url
from db.models import ScoreRun
from db.secrets import mask_secrets
from flows.score import score

SECRETS = ("userinfo-s3cret", "query-s3cret")
UNREACHABLE = f"postgresql+psycopg://analyst:{SECRETS[0]}@127.0.0.1:9/x?password={SECRETS[1]}"
COMMANDS = [
    ["init-db"],
    ["import-events", "events.csv"],
    ["generate-demo-data"],
    ["retrain"],
    ["score"],
    ["evaluate"],
    ["report"],
    ["demo"],
]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def with_secrets(database_url: str) -> str:
    """The URL with one password in its user info and another as a query parameter; the
    PostgreSQL test server trusts local connections, so it takes both and checks neither."""
    url = make_url(database_url).set(password=SECRETS[0], query={"password": SECRETS[1]})
    return url.render_as_string(hide_password=False)


def assert_no_secret(channels: dict[str, str]) -> None:
    """No secret in any channel, even split across lines by a terminal's width."""
    unwrapped = {name: text.replace("\n", "") for name, text in channels.items()}
    leaks = [(name, s) for name, text in unwrapped.items() for s in SECRETS if s in text]
    assert leaks == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:pw-SECRET@h:5432/db",
        "postgresql+psycopg://u@h/db?password=pw-SECRET&sslmode=require",
        "postgresql+psycopg://u@h/db?passfile=/home/u/pw-SECRET",
        "mysql+pymysql://u@h/db?PASSWD=pw-SECRET&charset=utf8mb4",
        "postgresql+psycopg://u:pw@SECRET@h/db",  # an unescaped "@" in the password
    ],
)
def test_every_way_a_url_carries_a_password_is_masked(url):
    shown = safe_url(url)
    assert "SECRET" not in shown
    assert "***" in shown
    assert "h/db" in shown or "h:5432/db" in shown


def test_a_connection_string_in_a_message_is_masked():
    message = "connection failed: host=h password=pw-SECRET dbname=x (postgresql://a:pw-SECRET@h)"
    assert "SECRET" not in mask_secrets(message)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_an_unreachable_database_is_one_line_without_its_password(command, monkeypatch):
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", UNREACHABLE)
    result = invoke(*command)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: cannot reach database postgresql+psycopg://analyst:***@127.0.0.1:9/x?password=***"
        ': connection failed: connection to server at "127.0.0.1", port 9 failed: Connection '
        "refused"
    ]
    assert_no_secret({"cli": result.output})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_ready_names_the_database_without_its_password(database_url, monkeypatch):
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", with_secrets(database_url))
    result = invoke("init-db")
    assert result.exit_code == 0, result.output
    assert "database ready: postgresql+psycopg://postgres:***@" in result.output
    assert "password=***" in result.output
    assert_no_secret({"cli": result.output})


# PostgreSQL's test server is the one that accepts a password it does not check.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("champion")
def test_a_failing_run_shows_no_password_on_any_channel(
    populated, database_url, failing_staging, prefect_record, monkeypatch, caplog, capfd
):
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", with_secrets(database_url))
    failing_staging(True)
    with caplog.at_level(logging.DEBUG):
        result = invoke("score")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "error: database error: disk gone"
    with populated.connect() as connection:
        ((flow_run_id, error),) = connection.execute(
            select(ScoreRun.flow_run_id, ScoreRun.error)
        ).all()
    in_prefect = prefect_record(flow_run_id)
    assert "disk gone" in in_prefect
    assert_no_secret(
        {
            "cli": result.output,
            "terminal": "".join(capfd.readouterr()),
            "log records": caplog.text,
            "prefect api": in_prefect,
            "score_runs.error": error,
        }
    )


@pytest.mark.usefixtures("champion")
def test_a_failed_run_keeps_the_error_type_and_the_driver_s_first_line_only(
    populated, failing_staging
):
    """SQLAlchemy's message adds the statement and its parameters (customer ids) to the
    driver's; PostgreSQL's COPY error adds the row it was writing."""
    failing_staging(True)
    with pytest.raises(Exception, match="disk gone"):
        score()
    with populated.connect() as connection:
        error = connection.scalar(select(ScoreRun.error))
    assert re.fullmatch(r"[A-Za-z]+Error: .*disk gone.*", error)
    assert not re.search(r"SQL|INSERT|COPY|parameters|C\d{7}|\n", error)

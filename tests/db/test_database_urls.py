"""A database URL whose password breaks URL parsing (an "@", a "/", a space) is masked as
written, never parsed first, and one that cannot be parsed as meant is refused in one line
that does not echo the password, on the command line too. The SQLite file the service
creates is readable by its user only."""

import stat
import subprocess
import sys

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cli.main import app
from db.engine import make_engine, parse_database_url, safe_url
from db.errors import InvalidDatabaseUrl
from db.secrets import mask_url

SECRET = "Pw_CCC"
# The password's "/" is legal in SQLAlchemy's parser, its "@" is not: everything after the
# first "@" would be taken for the host, and the driver's error would print it.
URLS = {
    "slash": f"postgresql+psycopg://rt_owner:ng/{SECRET}@127.0.0.1/db",
    "at": f"postgresql+psycopg://rt_owner:ng@{SECRET}@127.0.0.1/db",
    "at-mysql": f"mysql+pymysql://rt_owner:ng@{SECRET}@127.0.0.1/db",
    "at-and-port": f"postgresql+psycopg://rt_owner:a@b:{SECRET}@127.0.0.1:5432/db",
    "space": f"postgresql+psycopg://rt_owner:ng {SECRET}@127.0.0.1/db",
    "quote": f"postgresql+psycopg://rt_owner:ng'\"{SECRET}@127.0.0.1/db",
    "bad-port": f"postgresql+psycopg://rt_owner:ng/{SECRET}@127.0.0.1:notaport/db",
    "no-scheme": f"rt_owner:ng/{SECRET}@127.0.0.1/db",
    "query": f"postgresql+psycopg://rt_owner@127.0.0.1/db?sslmode=require&password=a b/{SECRET}",
}
REFUSED = ("at", "at-mysql", "at-and-port", "bad-port", "no-scheme")


@pytest.mark.parametrize("url", URLS.values(), ids=URLS.keys())
def test_a_password_is_masked_however_it_breaks_parsing(url):
    shown = safe_url(url)
    assert SECRET not in shown
    assert "***" in shown
    assert mask_url(url) == shown


def test_masking_keeps_what_is_not_secret():
    url = "postgresql+psycopg://rt_owner:ng/Pw@x@db-host:5432/scores?sslmode=require&pwd=z"
    assert mask_url(url) == (
        "postgresql+psycopg://rt_owner:***@db-host:5432/scores?sslmode=require&pwd=***"
    )
    assert mask_url("sqlite:///propensity.db") == "sqlite:///propensity.db"
    assert mask_url("postgresql://scores@db-host/scores") == "postgresql://scores@db-host/scores"


@pytest.mark.parametrize("name", REFUSED)
def test_a_url_that_does_not_parse_as_meant_is_refused_without_its_password(name):
    with pytest.raises(InvalidDatabaseUrl) as refused:
        make_engine(URLS[name])
    message = str(refused.value)
    assert message.startswith(f"invalid database URL {mask_url(URLS[name])}: ")
    assert SECRET not in message
    assert "\n" not in message


def test_an_escaped_at_sign_is_a_password_like_any_other():
    url = parse_database_url(f"postgresql+psycopg://rt_owner:ng%40{SECRET}@127.0.0.1/db")
    assert (url.password, url.host) == (f"ng@{SECRET}", "127.0.0.1")


@pytest.mark.parametrize("name", ["slash", *REFUSED, "space"])
@pytest.mark.parametrize("command", [["init-db"], ["report"], ["evaluate"]], ids=lambda c: c[0])
def test_no_command_prints_the_password(name, command, monkeypatch):
    """Parsed or refused, reached or not: the password is on no line the command prints."""
    monkeypatch.setenv("PROPENSITY_DATABASE_URL", URLS[name])
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1
    assert SECRET not in result.output
    assert len(result.output.strip().splitlines()) == 1
    if name in REFUSED:
        assert result.output.startswith(f"error: invalid database URL {mask_url(URLS[name])}")


def test_the_sqlite_file_the_service_creates_is_readable_by_its_user_only(tmp_path):
    path = tmp_path / "propensity.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER)"))
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_sqlite_file_keeps_its_mode(tmp_path):
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    with make_engine(f"sqlite:///{path}").connect() as connection:
        connection.execute(text("SELECT 1"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_opening_another_connection_keeps_the_locks_this_process_holds(tmp_path):
    """POSIX file locks belong to a process, and closing any descriptor of the file drops
    them all: a new connection must not open the existing database file outside SQLite, or
    another process writes while this one thinks it holds the lock."""
    path = tmp_path / "locked.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INTEGER)"))
    writer = (
        "import sqlite3, sys; connection = sqlite3.connect(sys.argv[1], timeout=0.2); "
        "connection.execute('INSERT INTO t VALUES (2)'); connection.commit()"
    )
    with engine.connect() as holder:
        holder.execute(text("BEGIN IMMEDIATE"))
        holder.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as another:  # a second pooled connection: a new connect
            another.execute(text("SELECT 1"))
        other = subprocess.run(
            [sys.executable, "-c", writer, str(path)], capture_output=True, text=True
        )
        assert other.returncode != 0 and "database is locked" in other.stderr
        holder.execute(text("COMMIT"))
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM t")) == 1
    engine.dispose()

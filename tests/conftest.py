"""Shared fixtures: every database test runs on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB tests need PROPENSITY_TEST_POSTGRES_URL / PROPENSITY_TEST_MYSQL_URL
(a server URL; each test gets its own fresh database there, dropped afterwards). Without
them the tests skip locally; with CI set, a missing server is a failure.
"""

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from db.engine import make_engine
from db.migrate import upgrade

SERVER_URL_VARIABLES = {
    "postgresql": "PROPENSITY_TEST_POSTGRES_URL",
    "mysql": "PROPENSITY_TEST_MYSQL_URL",
}


def server_url(backend: str) -> str:
    variable = SERVER_URL_VARIABLES[backend]
    url = os.environ.get(variable)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{variable} is not set: CI must test {backend}")
    pytest.skip(f"{variable} not set: {backend} tests skipped")


def _fresh_server_database(backend: str) -> Iterator[str]:
    base = make_url(server_url(backend))
    name = f"propensity_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    except Exception as error:
        admin.dispose()
        pytest.fail(f"cannot create a {backend} test database: {error}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        drop = f"DROP DATABASE IF EXISTS {name}"
        if backend == "postgresql":
            drop += " WITH (FORCE)"
        with admin.connect() as connection:
            connection.execute(text(drop))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def database_url(request, tmp_path) -> Iterator[str]:
    """An empty database on each back-end, dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'propensity.db'}"
    else:
        yield from _fresh_server_database(request.param)


@pytest.fixture
def engine(database_url) -> Iterator[Engine]:
    """A migrated database on each back-end."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgrade(connection)
    yield engine
    engine.dispose()


# Every insert into the staging table fails with "disk gone", as a full disk would make it.
STAGING_FAILURE = {
    "sqlite": [
        "CREATE TRIGGER fail_staging BEFORE INSERT ON propensity_score_staging "
        "BEGIN SELECT RAISE(ABORT, 'disk gone'); END"
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION fail_staging() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'disk gone'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER fail_staging BEFORE INSERT ON propensity_score_staging "
        "FOR EACH ROW EXECUTE FUNCTION fail_staging()",
    ],
    "mysql": [
        "CREATE TRIGGER fail_staging BEFORE INSERT ON propensity_score_staging FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'disk gone', MYSQL_ERRNO = 1062"
    ],
}
STAGING_RECOVERY = {
    "sqlite": "DROP TRIGGER fail_staging",
    "postgresql": "DROP TRIGGER fail_staging ON propensity_score_staging",
    "mysql": "DROP TRIGGER fail_staging",
}


@pytest.fixture
def failing_staging(engine) -> Callable[[bool], None]:
    """failing_staging(True): every staged score write fails with "disk gone" (a trigger),
    until failing_staging(False)."""

    def switch(failing: bool) -> None:
        name = engine.dialect.name
        statements = STAGING_FAILURE[name] if failing else [STAGING_RECOVERY[name]]
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))

    return switch

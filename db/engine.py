"""Engines and sessions. Nothing here connects until a function is called."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import DatabaseUnreachable, InvalidDatabaseUrl, error_message
from db.files import create_private_file
from db.secrets import mask_secrets, mask_url

URL_FORM = (
    "a URL such as postgresql+psycopg://user@host:5432/database (a password after the user "
    "and a colon)"
)


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in logs and errors: its password masked, wherever it is given
    (user info, or a `password=` / `passfile=` query parameter). A URL given as text is
    masked as written, before any parsing, which a password can break."""
    if isinstance(url, str):
        return mask_url(url)
    return mask_secrets(url.render_as_string(hide_password=True))


def parse_database_url(url: str | URL) -> URL:
    """The URL parsed, or refused in one line that shows it masked. SQLAlchemy ends a
    password at its first "@": one holding an unescaped "@" would send the rest of it to the
    driver as the host name, and the driver's error would print it."""
    if isinstance(url, URL):
        return url
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise InvalidDatabaseUrl(
            f"invalid database URL {mask_url(url)}: expected {URL_FORM}"
        ) from None
    if "@" in (parsed.host or ""):
        raise InvalidDatabaseUrl(
            f"invalid database URL {mask_url(url)}: an '@' in the password must be written %40"
        )
    return parsed


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def md5_hex(text: str | None) -> str | None:
    """MD5 of the text's UTF-8 bytes in lowercase hex, as PostgreSQL's and MariaDB's md5()."""
    return None if text is None else hashlib.md5(text.encode()).hexdigest()


def _enlarge_sqlite_page_cache(dbapi_connection, _record) -> None:
    # 64 MiB instead of 2: an import's inserts land all over customer_events' indexes, and
    # a cache that holds more of them rewrites fewer pages (a cap; used only as filled).
    dbapi_connection.execute("PRAGMA cache_size = -65536")


def _add_sqlite_md5(dbapi_connection, _record) -> None:
    # SQLite has no md5(); the training sample orders customers by it on every database.
    dbapi_connection.create_function("md5", 1, md5_hex, deterministic=True)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL opens; None for an in-memory database or a URI filename."""
    database = url.database or ":memory:"
    uri = database.startswith("file:") or url.query.get("uri") == "true"
    return None if database == ":memory:" or uri else Path(database)


def make_engine(url: str | URL) -> Engine:
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Partition tasks write from threads; wait for the file lock instead of failing.
        engine = create_engine(parsed, connect_args={"timeout": 60})
        if (file := sqlite_file(parsed)) is not None:
            # SQLite would create the file with the process's umask (often world-readable);
            # its journal files take the mode of the database file.
            event.listen(engine, "do_connect", lambda *_: create_private_file(file))
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        event.listen(engine, "connect", _add_sqlite_md5)
        event.listen(engine, "connect", _enlarge_sqlite_page_cache)
        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        # Imports bulk-load with LOAD DATA LOCAL INFILE (db.bulk), which the client must allow.
        return create_engine(parsed, pool_pre_ping=True, connect_args={"local_infile": True})
    return create_engine(parsed, pool_pre_ping=True)


def check_reachable(engine: Engine) -> None:
    """Fail with one line naming the server (never the password) if it does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as error:
        raise DatabaseUnreachable(
            f"cannot reach database {safe_url(engine.url)}: {error_message(error, engine.url)}"
        ) from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls everything back on any error."""
    with session_factory(engine).begin() as session:
        yield session

"""Errors of the data layer; each message names the problem and is safe to print."""

from sqlalchemy import URL

from db.secrets import mask_secrets, url_secrets


class DataLayerError(Exception):
    """Base of errors the CLI shows as one line."""


class DatabaseUnreachable(DataLayerError):
    pass


class InvalidDatabaseUrl(DataLayerError):
    pass


class SourceMappingError(DataLayerError):
    pass


class ImportRejected(DataLayerError):
    pass


class SchemaOutdated(DataLayerError):
    """The database's schema is not the one this version of the code was written for."""


def error_message(error: BaseException, url: URL | None = None) -> str:
    """The first line of what went wrong, safe to print and to store: for SQLAlchemy's errors
    the driver's own message, without the SQL statement and parameters SQLAlchemy appends;
    passwords masked, those of `url` wherever they appear."""
    origin = getattr(error, "orig", None) or error
    lines = str(origin).strip().splitlines()
    message = lines[0] if lines else type(origin).__name__
    return mask_secrets(message, url_secrets(url) if url is not None else ())


def error_line(error: BaseException) -> str:
    """The exception's type and error_message: what score_runs.error keeps."""
    return f"{type(error).__name__}: {error_message(error)}"

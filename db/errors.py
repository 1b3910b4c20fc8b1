"""Errors of the data layer; each message names the problem and is safe to print."""


class DataLayerError(Exception):
    """Base of errors the CLI shows as one line."""


class DatabaseUnreachable(DataLayerError):
    pass


class SourceMappingError(DataLayerError):
    pass


class ImportRejected(DataLayerError):
    pass


class SchemaOutdated(DataLayerError):
    """The database's schema is not the one this version of the code was written for."""

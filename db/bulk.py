"""Dialect-aware bulk writes: multi-row inserts that skip rows whose key already exists."""

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Insert, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


def insert_ignoring_duplicates(table: Table, dialect_name: str) -> Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect_name in ("mysql", "mariadb"):
        # Not INSERT IGNORE: that would also swallow truncation and other data errors.
        statement = mysql.insert(table)
        key = table.primary_key.columns[0].name
        return statement.on_duplicate_key_update({key: statement.inserted[key]})
    raise NotImplementedError(f"bulk insert is not supported on {dialect_name}")


def insert_new_rows(
    bind: Session | Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows in large multi-row batches; rows whose primary key exists are skipped."""
    if rows:
        bind.execute(insert_ignoring_duplicates(table, bind.get_bind().dialect.name), list(rows))


def bulk_insert(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Fastest plain insert per database: COPY on PostgreSQL, multi-row INSERTs elsewhere."""
    if frame.empty:
        return
    if connection.dialect.name == "postgresql":
        _copy_csv(connection, table, frame)
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        connection.execute(table.insert(), records)


def _copy_csv(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    # Identifiers come from the table's own metadata, quoted by the dialect.
    quote = connection.dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in frame.columns)
    statement = f"COPY {quote.format_table(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    cursor = connection.connection.driver_connection.cursor()
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        with cursor.copy(statement) as copy:
            for block in _csv_blocks(frame):
                copy.write(block)
    except driver_error as error:
        # Wrapped as SQLAlchemy wraps what it executes itself, so that retries (on a lost
        # connection) and error messages treat a failed COPY like a failed INSERT.
        raise DBAPIError.instance(
            statement, None, error, driver_error, dialect=connection.dialect
        ) from error
    finally:
        cursor.close()


# Column kinds whose Arrow CSV text PostgreSQL reads back exactly: strings are quoted (so ''
# and NULL stay distinct), doubles are written shortest-exact, timestamps as ISO text.
ARROW_CSV_KINDS = "biufMO"


def _csv_blocks(frame: pd.DataFrame, rows: int = 500_000):
    """The frame as CSV in blocks of rows: Arrow's writer (far faster than pandas' to_csv)
    where every column is of a kind it writes exactly, else pandas."""
    plain = all(
        dtype.kind in ARROW_CSV_KINDS and getattr(dtype, "tz", None) is None
        for dtype in frame.dtypes
    )
    for start in range(0, len(frame), rows):
        part = frame.iloc[start : start + rows]
        if plain:
            try:
                table = pa.Table.from_pandas(part, preserve_index=False)
            except (pa.ArrowException, TypeError, ValueError):
                plain = False  # e.g. mixed values in an object column
            else:
                if all(_arrow_writes_exactly(field.type) for field in table.schema):
                    sink = io.BytesIO()
                    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
                    yield sink.getvalue()
                    continue
                plain = False
        yield part.to_csv(index=False, header=False)


def _arrow_writes_exactly(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_null(kind)
        or (pa.types.is_timestamp(kind) and kind.tz is None)
    )

"""Dialect-aware bulk writes: the database's own bulk path, and inserts that skip rows whose
key already exists."""

import io
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Insert, Select, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.errors import DataLayerError

MYSQL = ("mysql", "mariadb")
BLOCK_ROWS = 500_000


class BulkLoadRefused(DataLayerError):
    """The database would have stored a loaded value other than it was sent."""


def insert_ignoring_duplicates(table: Table, dialect_name: str) -> Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect_name in MYSQL:
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


def insert_new_from(table: Table, rows: Select, dialect_name: str) -> Insert:
    """INSERT INTO table SELECT rows, skipping those whose key exists (also earlier ones of
    the same statement); its rowcount is the number of rows inserted.

    `rows` must be read from a table of the same column types (a staging table): on MySQL
    this is INSERT IGNORE, which would also hide a value's conversion, but none can happen
    between columns of one type. ON DUPLICATE KEY UPDATE would count every row found, as
    SQLAlchemy connects with CLIENT_FOUND_ROWS.
    """
    columns = list(rows.selected_columns.keys())
    if dialect_name in MYSQL:
        return mysql.insert(table).prefix_with("IGNORE").from_select(columns, rows)
    return insert_ignoring_duplicates(table, dialect_name).from_select(columns, rows)


def bulk_insert(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Fastest plain insert per database: COPY on PostgreSQL, LOAD DATA LOCAL INFILE on
    MariaDB/MySQL where the server allows it, else the driver's executemany of values it
    takes as they are (no per-row work in SQLAlchemy)."""
    if frame.empty:
        return
    if connection.dialect.name == "postgresql":
        _copy_csv(connection, table, frame)
    elif connection.dialect.name in MYSQL and _local_infile_allowed(connection):
        _load_data_local(connection, table, frame)
    else:
        _insert_many(connection, table, frame)


def _copy_csv(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    # Identifiers come from the table's own metadata, quoted by the dialect.
    quote = connection.dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in frame.columns)
    statement = f"COPY {quote.format_table(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    cursor = connection.connection.driver_connection.cursor()
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        with cursor.copy(statement) as copy:
            for part in _blocks(frame):
                data = _arrow_csv(part, null_string="")
                copy.write(part.to_csv(index=False, header=False) if data is None else data)
    except driver_error as error:
        # Wrapped as SQLAlchemy wraps what it executes itself, so that retries (on a lost
        # connection) and error messages treat a failed COPY like a failed INSERT.
        raise DBAPIError.instance(
            statement, None, error, driver_error, dialect=connection.dialect
        ) from error
    finally:
        cursor.close()


def _local_infile_allowed(connection: Connection) -> bool:
    # MariaDB allows it by default, MySQL 8 does not; the client side is set in db.engine.
    return bool(connection.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar())


def _load_data_local(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    quote = connection.dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in frame.columns)
    # Strings are always quoted by Arrow, so the bare word NULL is SQL NULL and "NULL" text.
    statement = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {quote.format_table(table)} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
        f"ESCAPED BY '' LINES TERMINATED BY '\\n' ({columns})"
    )
    # With LOCAL the server cannot stop the client mid-file, so values it cannot store become
    # warnings instead of errors, and the row is stored changed: any warning fails the load.
    # Notes (an amount rounded to the column's scale, as an INSERT rounds it) are not counted.
    connection.exec_driver_sql("SET SESSION sql_notes = 0")
    try:
        for part in _blocks(frame):
            data = _arrow_csv(part, null_string="NULL")
            if data is None:  # a column Arrow would not write exactly
                _insert_many(connection, table, part)
                continue
            _send_through_pipe(connection, statement, data)
            if connection.exec_driver_sql("SELECT @@warning_count").scalar():
                _, code, message = connection.exec_driver_sql("SHOW WARNINGS LIMIT 1").one()
                raise BulkLoadRefused(f"loading {table.name} refused: {message} ({code})")
    finally:
        if not connection.invalidated:  # a lost connection takes its session with it
            connection.exec_driver_sql("SET SESSION sql_notes = 1")


def _send_through_pipe(connection: Connection, statement: str, data: bytes) -> None:
    """Run LOAD DATA LOCAL INFILE on `data`, handed to the driver as a pipe's /dev/fd path:
    the rows never touch the disk, so nothing is left behind, even by a killed process."""
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=_write_all, args=(write_end, data), daemon=True)
    writer.start()
    try:
        connection.exec_driver_sql(statement, (f"/dev/fd/{read_end}",))
    finally:
        # A load that failed before reading everything leaves the writer blocked on a full
        # pipe: closing the read end ends it (EPIPE).
        os.close(read_end)
        writer.join()


def _write_all(descriptor: int, data: bytes) -> None:
    try:
        with open(descriptor, "wb") as pipe:
            pipe.write(data)
    except BrokenPipeError:
        pass  # the reader stopped early; its error is the load's


def _insert_many(connection: Connection, table: Table, frame: pd.DataFrame) -> None:
    """The driver's executemany of the frame's values: timestamps as the text SQLAlchemy
    stores them ('YYYY-MM-DD HH:MM:SS.ffffff', which MySQL reads too), nulls as None."""
    quote = connection.dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in frame.columns)
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    markers = ", ".join([marker] * len(frame.columns))
    statement = f"INSERT INTO {quote.format_table(table)} ({columns}) VALUES ({markers})"
    values = [_driver_values(frame[name]) for name in frame.columns]
    for start in range(0, len(frame), BLOCK_ROWS):
        block = [column[start : start + BLOCK_ROWS] for column in values]
        connection.exec_driver_sql(statement, list(zip(*block, strict=True)))


def _driver_values(column: pd.Series) -> list:
    if column.dtype.kind == "M" and getattr(column.dtype, "tz", None) is None:
        # Arrow writes naive timestamps exactly as SQLAlchemy stores them on SQLite.
        return pa.array(column.to_numpy("datetime64[us]")).cast(pa.string()).to_pylist()
    return column.astype(object).where(column.notna(), None).tolist()


def _blocks(frame: pd.DataFrame) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), BLOCK_ROWS):
        yield frame.iloc[start : start + BLOCK_ROWS]


def _arrow_csv(part: pd.DataFrame, null_string: str) -> bytes | None:
    """The rows as CSV by Arrow's writer (far faster than pandas' to_csv), or None where a
    column is of a kind it would not write exactly. Strings are quoted (so '' and NULL stay
    distinct), doubles written shortest-exact, timestamps as ISO text, booleans as 1 and 0
    (which both PostgreSQL and MySQL read)."""
    if any(getattr(dtype, "tz", None) is not None for dtype in part.dtypes):
        return None
    try:
        table = pa.Table.from_pandas(part, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        return None  # e.g. mixed values in an object column
    if not all(_arrow_writes_exactly(field.type) for field in table.schema):
        return None
    for index, field in enumerate(table.schema):
        if pa.types.is_boolean(field.type):
            table = table.set_column(index, field.name, pc.cast(table[index], pa.int8()))
    sink = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=False, null_string=null_string)
    pa_csv.write_csv(table, sink, options)
    return sink.getvalue()


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
